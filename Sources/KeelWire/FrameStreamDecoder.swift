/// Cuts a TCP byte stream into whole frames.
///
/// Owns one bounded buffer, allocated at start. The owner receives straight into `receiveSpace()`
/// (or copies in with `append`), reports the bytes with `didReceive(byteCount:)`, then calls
/// `nextFrame()` until it returns nil. Each frame comes back as a view into the buffer, valid until
/// the next `receiveSpace()` or `append` (which may move a partial frame to the front).
///
/// Only framing is checked here (the length field: at least a header, at most the limit); the
/// frame's contents are validated by `WireMessage(validating:)`. Once a length is rejected the
/// stream cannot be re-synchronised, so the decoder stays failed and keeps throwing the same
/// rejection: the connection must be closed.
public final class FrameStreamDecoder {
    /// The largest frame this decoder accepts.
    public let maxFrameLengthBytes: Int
    /// The buffer's size in bytes (at least `maxFrameLengthBytes`, so any accepted frame fits).
    public let capacityBytes: Int
    private let storage: UnsafeMutableRawBufferPointer
    private var readIndex = 0
    private var writeIndex = 0
    /// The rejection that stopped this stream, if any.
    public private(set) var failure: WireRejection?

    /// A decoder accepting frames up to `maxFrameLengthBytes` (header included), with a buffer of
    /// `capacityBytes` (at least the frame limit; more lets one receive bring in more frames).
    public init(maxFrameLengthBytes: Int = 1 << 20, capacityBytes: Int? = nil) {
        precondition(
            maxFrameLengthBytes >= WireProtocol.headerBytes && maxFrameLengthBytes <= WireProtocol.maxFrameLengthBytes,
            "frame limit out of range")
        let capacity = capacityBytes ?? max(maxFrameLengthBytes, 64 << 10)
        precondition(capacity >= maxFrameLengthBytes, "stream buffer smaller than the largest frame")
        self.maxFrameLengthBytes = maxFrameLengthBytes
        self.capacityBytes = capacity
        storage = .allocate(byteCount: capacity, alignment: 16)
    }

    deinit { storage.deallocate() }

    /// Bytes received but not yet returned as frames.
    public var bufferedByteCount: Int { writeIndex - readIndex }

    /// Where to receive next: the free space after the buffered bytes, after moving any partial
    /// frame to the front. Invalidates frames returned earlier. Empty only if whole frames are still
    /// waiting to be taken with `nextFrame()`.
    public func receiveSpace() -> UnsafeMutableRawBufferPointer {
        compact()
        return UnsafeMutableRawBufferPointer(rebasing: storage[writeIndex..<capacityBytes])
    }

    /// Records that `byteCount` bytes were received into the space `receiveSpace()` returned.
    public func didReceive(byteCount: Int) {
        precondition(byteCount >= 0 && byteCount <= capacityBytes - writeIndex, "received more than the receive space")
        writeIndex += byteCount
    }

    /// Copies as much of `bytes` as fits into the buffer; returns how many bytes were taken.
    /// Invalidates frames returned earlier.
    @discardableResult
    public func append(_ bytes: UnsafeRawBufferPointer) -> Int {
        let space = receiveSpace()
        let count = min(space.count, bytes.count)
        if count > 0 {
            space.copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[0..<count]))
            writeIndex += count
        }
        return count
    }

    /// The next whole frame, or nil when the buffered bytes do not yet hold one. Throws when a frame
    /// header declares a length below the header size or above the limit.
    public func nextFrame() throws(WireRejection) -> UnsafeRawBufferPointer? {
        if let failure { throw failure }
        let available = writeIndex - readIndex
        // Four bytes are enough to judge the length: reject an oversized frame before buffering it.
        guard available >= 4 else { return nil }
        let length = Int(UInt32(littleEndian: UnsafeRawPointer(storage.baseAddress! + readIndex).loadUnaligned(as: UInt32.self)))
        if length < WireProtocol.headerBytes {
            return try fail(.tooShort(length: length, minimum: WireProtocol.headerBytes))
        }
        if length > maxFrameLengthBytes {
            return try fail(.tooLong(length: length, maximum: maxFrameLengthBytes))
        }
        guard available >= length else { return nil }
        let frame = UnsafeRawBufferPointer(rebasing: storage[readIndex..<(readIndex + length)])
        readIndex += length
        if readIndex == writeIndex {
            // Everything consumed: start over at the front without moving bytes. The frame's bytes
            // stay put until the next receive.
            readIndex = 0
            writeIndex = 0
        }
        return frame
    }

    /// Forgets buffered bytes and any failure (for reusing the decoder on a new connection).
    public func reset() {
        readIndex = 0
        writeIndex = 0
        failure = nil
    }

    private func fail(_ rejection: WireRejection) throws(WireRejection) -> UnsafeRawBufferPointer? {
        failure = rejection
        throw rejection
    }

    private func compact() {
        guard readIndex > 0 else { return }
        let pending = writeIndex - readIndex
        if pending > 0 {
            storage.baseAddress!.copyMemory(from: storage.baseAddress! + readIndex, byteCount: pending)
        }
        readIndex = 0
        writeIndex = pending
    }
}
