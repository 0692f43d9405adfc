import KeelCore

/// Leader → follower: one piece of a snapshot being sent to a follower whose log is behind the
/// leader's log start. The chunk carries its own CRC32C, checked by the decoder.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x37  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                   term: sender's term (i64, ≥ 0)              |
///     +---------------------------------------------------------------+
///  16 |                       snapshotID (i64, ≥ 0)                   |
///     +---------------------------------------------------------------+
///  24 |         snapshotPosition (i64, ≥ 0): log position it holds    |
///     +---------------------------------------------------------------+
///  32 |       snapshotTerm (i64, 0 ≤ … ≤ term): term at that position |
///     +---------------------------------------------------------------+
///  40 |                     totalBytes (i64, ≥ 0)                     |
///     +---------------------------------------------------------------+
///  48 |          offset (i64, 0 ≤ offset, offset + chunk ≤ total)     |
///     +-------------------------------+-------------------------------+
///  56 |    chunkCRC (u32): CRC32C     |        chunkLength (u32)      |
///     +-------------------------------+-------------------------------+
///  64 |                chunk bytes: exactly chunkLength             ...
///     +---------------------------------------------------------------+
/// length = 64 + chunkLength. The last chunk is the one with offset + chunkLength = totalBytes.
/// ```
public struct SnapshotChunkFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 64
    /// The most chunk bytes one frame can carry.
    public static let maxChunkBytes = WireProtocol.maxFrameLengthBytes - fixedBytes

    /// Inbound decoder; checks the chunk's CRC32C too.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .snapshotChunk, minimumLength: Self.fixedBytes)
        let term = frame.wireInt64(at: 8), snapshotTerm = frame.wireInt64(at: 32)
        let total = frame.wireInt64(at: 40), offset = frame.wireInt64(at: 48)
        let chunkLength = Int(frame.wireLoad(UInt32.self, at: 60))
        try FrameCheck.nonNegative(term, "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "snapshotID")
        try FrameCheck.nonNegative(frame.wireInt64(at: 24), "snapshotPosition")
        try FrameCheck.require(snapshotTerm >= 0 && snapshotTerm <= term, "snapshotTerm", snapshotTerm)
        try FrameCheck.nonNegative(total, "totalBytes")
        // offset ≤ total first, so total - offset cannot overflow.
        try FrameCheck.require(offset >= 0 && offset <= total, "offset", offset)
        try FrameCheck.require(Int64(chunkLength) <= total - offset, "chunkLength", Int64(chunkLength))
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: chunkLength)
        let expected = frame.wireLoad(UInt32.self, at: 56)
        let actual = CRC32C.checksum(frame.wireSlice(at: Self.fixedBytes, count: chunkLength))
        guard expected == actual else { throw .checksumMismatch(expected: expected, actual: actual) }
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var snapshotID: Int64 { bytes.wireInt64(at: 16) }
    public var snapshotPosition: LogPosition { LogPosition(bytes.wireInt64(at: 24)) }
    public var snapshotTerm: Term { Term(bytes.wireInt64(at: 32)) }
    public var totalBytes: Int64 { bytes.wireInt64(at: 40) }
    public var offset: Int64 { bytes.wireInt64(at: 48) }
    public var chunkCRC: UInt32 { bytes.wireLoad(UInt32.self, at: 56) }
    /// The chunk, in place.
    public var chunk: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }
    /// True for the chunk that ends the snapshot.
    public var isLast: Bool { offset + Int64(chunk.count) == totalBytes }

    /// The frame length for a chunk of `chunkByteCount` bytes.
    public static func encodedLength(chunkByteCount: Int) -> Int { fixedBytes + chunkByteCount }

    /// Outbound encoder: computes the chunk's CRC32C and copies it behind the fixed part; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, snapshotID: Int64, snapshotPosition: LogPosition,
        snapshotTerm: Term, totalBytes: Int64, offset: Int64, chunk: UnsafeRawBufferPointer
    ) -> Int {
        precondition(chunk.count <= maxChunkBytes, "chunk larger than one frame")
        buffer.wireCopy(chunk, at: fixedBytes)
        return encodeInPlace(
            into: buffer, term: term, snapshotID: snapshotID, snapshotPosition: snapshotPosition, snapshotTerm: snapshotTerm,
            totalBytes: totalBytes, offset: offset, chunkLength: chunk.count)
    }

    /// Outbound encoder for a chunk already at `buffer[64..<64 + chunkLength]` (read there straight
    /// from the snapshot file, no copy): writes the fixed part with the chunk's CRC32C; returns the frame length.
    @discardableResult
    public static func encodeInPlace(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, snapshotID: Int64, snapshotPosition: LogPosition,
        snapshotTerm: Term, totalBytes: Int64, offset: Int64, chunkLength: Int
    ) -> Int {
        precondition(term.rawValue >= 0 && snapshotID >= 0 && snapshotPosition.rawValue >= 0, "bad snapshot identity")
        precondition(snapshotTerm.rawValue >= 0 && snapshotTerm <= term, "snapshot term beyond the sender's term")
        precondition(offset >= 0 && offset <= totalBytes && Int64(chunkLength) <= totalBytes - offset, "chunk outside the snapshot")
        precondition(chunkLength >= 0 && chunkLength <= maxChunkBytes, "chunk larger than one frame")
        let length = fixedBytes + chunkLength
        FrameHeader.write(into: buffer, length: length, type: .snapshotChunk)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(snapshotID, at: 16)
        buffer.wireStore(snapshotPosition.rawValue, at: 24)
        buffer.wireStore(snapshotTerm.rawValue, at: 32)
        buffer.wireStore(totalBytes, at: 40)
        buffer.wireStore(offset, at: 48)
        buffer.wireStore(CRC32C.checksum(UnsafeRawBufferPointer(rebasing: buffer[fixedBytes..<length])), at: 56)
        buffer.wireStore(UInt32(chunkLength), at: 60)
        return length
    }
}
