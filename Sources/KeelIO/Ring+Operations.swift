import CLiburing
import Glibc
import KeelCore

// The operations owners queue on a ring. Each fills one submission entry in place: no allocation,
// no closure. The buffers passed in must stay valid until the operation's completion is reaped.
extension Ring {
    /// Queues a write of `bytes` at `offset` of `descriptor` (a short write completes with the
    /// count written). With `linkNext`, the next queued operation starts only after this one
    /// succeeds in full, and is cancelled (ECANCELED) otherwise; reserve room for the whole chain
    /// first with `reserveSubmissions(_:)`.
    @inline(__always)
    public func queueWrite(
        owner: RingOwner, descriptor: Int32, _ bytes: UnsafeRawBufferPointer, offset: Int64, token: IOToken, linkNext: Bool = false
    ) throws(IOError) {
        precondition(bytes.count <= Int(UInt32.max), "one io_uring write is limited to 4 GiB")
        let entry = try nextSubmissionEntry()
        io_uring_prep_write(entry, descriptor, bytes.baseAddress, UInt32(bytes.count), UInt64(bitPattern: offset))
        finishEntry(entry, owner: owner, operation: .write, token: token, linkNext: linkNext)
    }

    /// Queues a read of up to `buffer.count` bytes at `offset` of `descriptor`.
    @inline(__always)
    public func queueRead(
        owner: RingOwner, descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int64, token: IOToken, linkNext: Bool = false
    ) throws(IOError) {
        precondition(buffer.count <= Int(UInt32.max), "one io_uring read is limited to 4 GiB")
        let entry = try nextSubmissionEntry()
        io_uring_prep_read(entry, descriptor, buffer.baseAddress, UInt32(buffer.count), UInt64(bitPattern: offset))
        finishEntry(entry, owner: owner, operation: .read, token: token, linkNext: linkNext)
    }

    /// Queues an fdatasync of `descriptor`.
    @inline(__always)
    public func queueDatasync(owner: RingOwner, descriptor: Int32, token: IOToken, linkNext: Bool = false) throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_fsync(entry, descriptor, UInt32(IORING_FSYNC_DATASYNC))
        finishEntry(entry, owner: owner, operation: .datasync, token: token, linkNext: linkNext)
    }

    /// Queues a full fsync of `descriptor` (a directory: its entries are metadata, which fdatasync
    /// need not commit), completing as `operation`.
    @inline(__always)
    public func queueFullSync(owner: RingOwner, descriptor: Int32, operation: IOOperation, token: IOToken) throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_fsync(entry, descriptor, 0)
        finishEntry(entry, owner: owner, operation: operation, token: token, linkNext: false)
    }

    /// Queues a send of `bytes` on a connected socket (MSG_NOSIGNAL: a closed peer gives EPIPE,
    /// not a signal).
    @inline(__always)
    public func queueSend(owner: RingOwner, descriptor: Int32, _ bytes: UnsafeRawBufferPointer, token: IOToken, linkNext: Bool = false) throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_send(entry, descriptor, bytes.baseAddress, bytes.count, Int32(MSG_NOSIGNAL))
        finishEntry(entry, owner: owner, operation: .send, token: token, linkNext: linkNext)
    }

    /// Queues a receive of up to `buffer.count` bytes from a connected socket (0 bytes: peer closed).
    @inline(__always)
    public func queueReceive(owner: RingOwner, descriptor: Int32, into buffer: UnsafeMutableRawBufferPointer, token: IOToken, linkNext: Bool = false) throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_recv(entry, descriptor, buffer.baseAddress, buffer.count, 0)
        finishEntry(entry, owner: owner, operation: .receive, token: token, linkNext: linkNext)
    }

    /// Queues an accept on a listening socket; the completion's result is the new descriptor
    /// (created close-on-exec).
    @inline(__always)
    public func queueAccept(owner: RingOwner, descriptor: Int32, token: IOToken) throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_accept(entry, descriptor, nil, nil, Int32(SOCK_CLOEXEC.rawValue))
        finishEntry(entry, owner: owner, operation: .accept, token: token, linkNext: false)
    }

    /// Queues a connect of `descriptor` to `address` (`addressLength` bytes), which must stay valid
    /// until the completion is reaped.
    @inline(__always)
    public func queueConnect(
        owner: RingOwner, descriptor: Int32, address: UnsafePointer<sockaddr>, addressLength: socklen_t, token: IOToken
    ) throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_connect(entry, descriptor, address, addressLength)
        finishEntry(entry, owner: owner, operation: .connect, token: token, linkNext: false)
    }

    /// Queues an operation that does nothing and completes with 0 (for ordering and tests).
    @inline(__always)
    public func queueNoOperation(owner: RingOwner, operation: IOOperation, token: IOToken, linkNext: Bool = false) throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_nop(entry)
        finishEntry(entry, owner: owner, operation: operation, token: token, linkNext: linkNext)
    }
}
