import CLiburing
import Glibc
import KeelCore

/// `KeelCore.Transport` over TCP through a shared `Ring` (DESIGN.md decisions 2 and 3).
///
/// - A `ConnectionID` is the socket's descriptor, and an accept completion's result is the new
///   descriptor: the data path needs no lookup table and allocates nothing per operation (the
///   submission entry is filled in place; the token rides in `user_data`).
/// - Control calls (`listen`, the socket set-up of `submitConnect`, `close`) are plain system calls
///   on the calling thread; accept, connect, send and receive go through the ring.
/// - Every connection gets TCP_NODELAY (frames are batched by the caller, so Nagle only adds delay).
/// - `close` cancels the connection's operations in the ring first (they complete with
///   ECANCELED), so no receive is left writing into a buffer its owner may reuse.
/// - One send and one receive in flight per connection is the intended pattern; a short send
///   completes with the count taken, and the caller (see `SendQueue`) resubmits the rest.
///
/// Owned by the thread that owns its ring. Tokens must fit in 48 bits (see `RingUserData`).
public final class IOUringTransport: Transport {
    /// Socket options applied to every socket this transport makes.
    public struct Configuration: Sendable {
        /// Pending connections a listener queues before refusing.
        public var listenBacklog: Int32
        /// SO_SNDBUF / SO_RCVBUF in bytes, or nil for the kernel's autotuning. Small values make a
        /// stopped reader back-pressure its sender sooner (tests use this).
        public var socketBufferBytes: Int32?

        public init(listenBacklog: Int32 = 512, socketBufferBytes: Int32? = nil) {
            self.listenBacklog = listenBacklog
            self.socketBufferBytes = socketBufferBytes
        }
    }

    private enum SocketKind: UInt8 { case closed, listener, connection }

    /// The ring this transport submits to (shared with other owners on the same thread).
    public let ring: Ring
    /// This transport's identity on the ring.
    public let ringOwner: RingOwner
    /// The socket options in force.
    public let configuration: Configuration
    /// The last failure of the submit that `reapCompletions` makes (it cannot throw); nil when none.
    public private(set) var submitFailure: IOError?
    /// Open listeners and connections.
    public private(set) var openSocketCount = 0

    /// What each descriptor is, indexed by descriptor; grows (rarely) at connect/accept time only.
    private var kinds: [SocketKind]
    /// The address each pending connect targets, indexed by descriptor: the kernel reads it until
    /// the connect completes. Allocated once per descriptor number and reused.
    private var connectAddresses: [UnsafeMutablePointer<sockaddr_in>?]

    /// Registers on `ring` with room for `completionCapacity` unreaped completions (at least the
    /// most operations in flight: two per connection plus accepts).
    public init(ring: Ring, configuration: Configuration = Configuration(), completionCapacity: Int = 4096) {
        self.ring = ring
        self.configuration = configuration
        ringOwner = ring.registerOwner(completionCapacity: completionCapacity)
        kinds = Array(repeating: .closed, count: 1024)
        connectAddresses = Array(repeating: nil, count: 1024)
    }

    deinit {
        for descriptor in kinds.indices where kinds[descriptor] != .closed {
            close(ConnectionID(rawValue: Int32(descriptor)))
        }
        for address in connectAddresses { address?.deallocate() }
        ring.unregisterOwner(ringOwner)
    }

    // MARK: Control path

    public func listen(host: String, port: UInt16) throws(IOError) -> ConnectionID {
        var address = try SocketAddress.ipv4(host: host, port: port, operation: .accept)
        let subject = "listen \(host):\(port)"
        let descriptor = try makeSocket(subject: subject, operation: .accept)
        do throws(IOError) {
            try setSocketOption(descriptor, level: SOL_SOCKET, option: SO_REUSEADDR, value: 1, name: "SO_REUSEADDR", operation: .accept)
            let bound = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            guard bound == 0 else { throw IOError(.accept, errno: errno, subject: "bind \(host):\(port)") }
            guard Glibc.listen(descriptor, configuration.listenBacklog) == 0 else { throw IOError(.accept, errno: errno, subject: subject) }
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
        track(descriptor, as: .listener)
        return ConnectionID(rawValue: descriptor)
    }

    /// The local port a listener or connection is bound to (for listeners made with port 0).
    public func localPort(_ connection: ConnectionID) throws(IOError) -> UInt16 {
        UInt16(bigEndian: try SocketAddress.local(of: connection.rawValue).sin_port)
    }

    public func peerAddress(_ connection: ConnectionID) -> String? {
        guard kind(of: connection) == .connection, let address = SocketAddress.peer(of: connection.rawValue) else { return nil }
        return SocketAddress.describe(address)
    }

    public func submitAccept(_ listener: ConnectionID, token: IOToken) throws(IOError) {
        precondition(kind(of: listener) == .listener, "\(listener) is not an open listener of this transport")
        try ring.queueAccept(owner: ringOwner, descriptor: listener.rawValue, token: token)
    }

    public func submitConnect(host: String, port: UInt16, token: IOToken) throws(IOError) -> ConnectionID {
        let address = try SocketAddress.ipv4(host: host, port: port, operation: .connect)
        let descriptor = try makeSocket(subject: "connect \(host):\(port)", operation: .connect)
        do throws(IOError) {
            try setSocketOption(descriptor, level: Int32(IPPROTO_TCP), option: TCP_NODELAY, value: 1, name: "TCP_NODELAY", operation: .connect)
            let slot = connectAddressSlot(descriptor)
            slot.pointee = address
            try slot.withMemoryRebound(to: sockaddr.self, capacity: 1) { (pointer) throws(IOError) in
                try ring.queueConnect(owner: ringOwner, descriptor: descriptor, address: pointer,
                                      addressLength: socklen_t(MemoryLayout<sockaddr_in>.size), token: token)
            }
        } catch {
            closeDescriptor(descriptor)
            throw error
        }
        track(descriptor, as: .connection)
        return ConnectionID(rawValue: descriptor)
    }

    public func close(_ connection: ConnectionID) {
        guard kind(of: connection) != .closed else { return }
        let descriptor = connection.rawValue
        // Cancel first, then close: an in-flight receive holds the socket open and would otherwise
        // never complete, keeping its buffer in use. The cancel runs inline during the submit.
        var cancelled = false
        if let entry = try? ring.nextSubmissionEntry() {
            io_uring_prep_cancel_fd(entry, descriptor, UInt32(IORING_ASYNC_CANCEL_ALL))
            ring.finishEntry(entry, owner: ringOwner, operation: .close, token: IOToken(0), linkNext: false)
            do { try ring.submit(); cancelled = true } catch { submitFailure = error }
        }
        // Without the cancel, shutdown is what wakes the pending operations (a receive sees 0).
        // With it, a plain close keeps TCP's own semantics (FIN, or RST when unread data remains).
        if !cancelled { shutdown(descriptor, Int32(SHUT_RDWR)) }
        closeDescriptor(descriptor)
        kinds[Int(descriptor)] = .closed
        openSocketCount -= 1
    }

    // MARK: Data path

    @inline(__always)
    public func submitSend(_ connection: ConnectionID, _ bytes: UnsafeRawBufferPointer, token: IOToken) throws(IOError) {
        precondition(kind(of: connection) == .connection, "\(connection) is not an open connection of this transport")
        try ring.queueSend(owner: ringOwner, descriptor: connection.rawValue, bytes, token: token)
    }

    @inline(__always)
    public func submitReceive(_ connection: ConnectionID, into buffer: UnsafeMutableRawBufferPointer, token: IOToken) throws(IOError) {
        precondition(kind(of: connection) == .connection, "\(connection) is not an open connection of this transport")
        try ring.queueReceive(owner: ringOwner, descriptor: connection.rawValue, into: buffer, token: token)
    }

    /// Hands queued operations to the kernel now (`reapCompletions` also does).
    public func flushSubmissions() throws(IOError) {
        try ring.submit()
    }

    /// Submits what is queued, then moves arrived completions into `completions`. An accepted
    /// connection is set up (TCP_NODELAY) before its completion is handed out.
    public func reapCompletions(into completions: inout IOCompletionBuffer) {
        do { try ring.submit() } catch { submitFailure = error }
        ring.reap()
        while !completions.isFull, let completion = ring.nextCompletion(for: ringOwner) {
            switch completion.operation {
            case .close:
                continue  // the cancel issued by `close`: nothing for the caller
            case .accept where completion.result >= 0:
                completions.append(adoptAccepted(completion))
            default:
                completions.append(completion.ioCompletion)
            }
        }
    }

    /// Sleeps until a completion of the shared ring, a wake-up or the timeout (see `Ring.wait`).
    public func waitForCompletions(timeoutNanos: Int64) throws(IOError) {
        try ring.wait(timeoutNanos: timeoutNanos)
    }

    // MARK: Helpers

    private func adoptAccepted(_ completion: RingCompletion) -> IOCompletion {
        let descriptor = completion.result
        do throws(IOError) {
            try setSocketOption(descriptor, level: Int32(IPPROTO_TCP), option: TCP_NODELAY, value: 1, name: "TCP_NODELAY", operation: .accept)
        } catch {
            closeDescriptor(descriptor)
            return IOCompletion(token: completion.token, operation: .accept, result: -error.errno)
        }
        track(descriptor, as: .connection)
        return completion.ioCompletion
    }

    private func makeSocket(subject: String, operation: IOOperation) throws(IOError) -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw IOError(operation, errno: errno, subject: subject) }
        if let bytes = configuration.socketBufferBytes {
            do {
                try setSocketOption(descriptor, level: SOL_SOCKET, option: SO_SNDBUF, value: bytes, name: "SO_SNDBUF", operation: operation)
                try setSocketOption(descriptor, level: SOL_SOCKET, option: SO_RCVBUF, value: bytes, name: "SO_RCVBUF", operation: operation)
            } catch {
                closeDescriptor(descriptor)
                throw error
            }
        }
        return descriptor
    }

    @inline(__always)
    private func kind(of connection: ConnectionID) -> SocketKind {
        let index = Int(connection.rawValue)
        return index >= 0 && index < kinds.count ? kinds[index] : .closed
    }

    private func track(_ descriptor: Int32, as kind: SocketKind) {
        let index = Int(descriptor)
        if index >= kinds.count {
            let newCount = max(kinds.count * 2, index + 1)
            kinds.append(contentsOf: repeatElement(.closed, count: newCount - kinds.count))
            connectAddresses.append(contentsOf: repeatElement(nil, count: newCount - connectAddresses.count))
        }
        precondition(kinds[index] == .closed, "descriptor \(descriptor) is already tracked")
        kinds[index] = kind
        openSocketCount += 1
    }

    private func connectAddressSlot(_ descriptor: Int32) -> UnsafeMutablePointer<sockaddr_in> {
        let index = Int(descriptor)
        if index >= connectAddresses.count {
            let newCount = max(connectAddresses.count * 2, index + 1)
            kinds.append(contentsOf: repeatElement(.closed, count: newCount - kinds.count))
            connectAddresses.append(contentsOf: repeatElement(nil, count: newCount - connectAddresses.count))
        }
        if let slot = connectAddresses[index] { return slot }
        let slot = UnsafeMutablePointer<sockaddr_in>.allocate(capacity: 1)
        connectAddresses[index] = slot
        return slot
    }
}
