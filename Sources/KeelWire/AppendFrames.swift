import KeelCore

// The Raft core's replication messages. KeelWire cannot see KeelRaft's message values (Wire → Core
// only), so encoders take the primitive fields and decoders expose them; the runtime maps
// `RaftMessage` ⇄ these frames field by field.

/// Leader → follower: append the log bytes [prevPosition, endPosition), all of term `entryTerm`,
/// after the entry ending at `prevPosition` of term `prevTerm`. The log bytes follow the fixed part.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x30  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                  term: the sender's term (i64)                |
///     +---------------------------------------------------------------+
///  16 |                     prevPosition (i64, ≥ 0)                   |
///     +---------------------------------------------------------------+
///  24 |              prevTerm (i64, 0 ≤ prevTerm ≤ entryTerm)         |
///     +---------------------------------------------------------------+
///  32 |                endPosition (i64, ≥ prevPosition)              |
///     +---------------------------------------------------------------+
///  40 |                   entryTerm (i64, ≤ term)                     |
///     +---------------------------------------------------------------+
///  48 |                     leaderCommit (i64, ≥ 0)                   |
///     +---------------------------------------------------------------+
///  56 |      log bytes: exactly endPosition - prevPosition of them    ...
///     +---------------------------------------------------------------+
/// ```
public struct AppendEntriesFrame {
    /// The whole frame.
    public let bytes: UnsafeRawBufferPointer
    /// Bytes before the log bytes.
    public static let fixedBytes = 56
    /// The most log bytes one frame can carry.
    public static let maxLogBytes = WireProtocol.maxFrameLengthBytes - fixedBytes

    /// Inbound decoder: validates `frame` (exactly one frame) and gives a view over it.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .appendEntries, minimumLength: Self.fixedBytes)
        let term = frame.wireInt64(at: 8), prevPosition = frame.wireInt64(at: 16), prevTerm = frame.wireInt64(at: 24)
        let endPosition = frame.wireInt64(at: 32), entryTerm = frame.wireInt64(at: 40), commit = frame.wireInt64(at: 48)
        try FrameCheck.nonNegative(term, "term")
        try FrameCheck.nonNegative(prevPosition, "prevPosition")
        try FrameCheck.nonNegative(prevTerm, "prevTerm")
        try FrameCheck.nonNegative(commit, "leaderCommit")
        try FrameCheck.require(endPosition >= prevPosition, "endPosition", endPosition)
        try FrameCheck.require(entryTerm >= prevTerm && entryTerm <= term, "entryTerm", entryTerm)
        // Compare as a difference of two non-negative Int64s: cannot overflow.
        let logByteCount = endPosition - prevPosition
        try FrameCheck.require(logByteCount <= Int64(Self.maxLogBytes), "endPosition", endPosition)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: Int(logByteCount))
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var prevPosition: LogPosition { LogPosition(bytes.wireInt64(at: 16)) }
    public var prevTerm: Term { Term(bytes.wireInt64(at: 24)) }
    public var endPosition: LogPosition { LogPosition(bytes.wireInt64(at: 32)) }
    public var entryTerm: Term { Term(bytes.wireInt64(at: 40)) }
    public var leaderCommit: LogPosition { LogPosition(bytes.wireInt64(at: 48)) }
    /// The log bytes [prevPosition, endPosition), in place.
    public var logBytes: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    /// The frame length for a range [prevPosition, endPosition).
    public static func encodedLength(prevPosition: LogPosition, endPosition: LogPosition) -> Int {
        fixedBytes + Int(endPosition.bytes(since: prevPosition))
    }

    /// Outbound encoder of the fixed part only: the caller sends the log bytes right behind it (for
    /// example straight from the mapped log with a vectored send). Returns the 56 bytes written.
    @discardableResult
    public static func encodeHeader(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, prevPosition: LogPosition, prevTerm: Term,
        endPosition: LogPosition, entryTerm: Term, leaderCommit: LogPosition
    ) -> Int {
        precondition(prevPosition.rawValue >= 0 && endPosition >= prevPosition, "append range out of order")
        precondition(prevTerm.rawValue >= 0 && prevTerm <= entryTerm && entryTerm <= term, "append terms out of order")
        precondition(leaderCommit.rawValue >= 0, "negative commit position")
        let logByteCount = endPosition.bytes(since: prevPosition)
        precondition(logByteCount <= Int64(maxLogBytes), "append range larger than one frame")
        precondition(buffer.count >= fixedBytes, "encode buffer smaller than the append header")
        // The header's length covers the log bytes that follow, which are not in `buffer`.
        buffer.wireStore(UInt32(fixedBytes + Int(logByteCount)), at: 0)
        buffer.wireStore(WireProtocol.version, at: 4)
        buffer.wireStore(MessageType.appendEntries.rawValue, at: 5)
        buffer.wireStore(UInt16(0), at: 6)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(prevPosition.rawValue, at: 16)
        buffer.wireStore(prevTerm.rawValue, at: 24)
        buffer.wireStore(endPosition.rawValue, at: 32)
        buffer.wireStore(entryTerm.rawValue, at: 40)
        buffer.wireStore(leaderCommit.rawValue, at: 48)
        return fixedBytes
    }

    /// Outbound encoder of a whole frame: the fixed part followed by a copy of `logBytes`, whose count
    /// must be `endPosition - prevPosition`. Returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, prevPosition: LogPosition, prevTerm: Term,
        endPosition: LogPosition, entryTerm: Term, leaderCommit: LogPosition, logBytes: UnsafeRawBufferPointer
    ) -> Int {
        precondition(Int64(logBytes.count) == endPosition.bytes(since: prevPosition), "log bytes do not match the range")
        let length = fixedBytes + logBytes.count
        precondition(buffer.count >= length, "encode buffer smaller than the frame")
        encodeHeader(
            into: buffer, term: term, prevPosition: prevPosition, prevTerm: prevTerm, endPosition: endPosition,
            entryTerm: entryTerm, leaderCommit: leaderCommit)
        buffer.wireCopy(logBytes, at: fixedBytes)
        return length
    }
}

/// Follower → leader: the answer to an append, a snapshot, or a newly persisted position.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x31  |     flags     |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  16 |                   appendedPosition (i64, ≥ 0)                 |
///     +---------------------------------------------------------------+
///  24 |          persistedPosition (i64, 0 ≤ … ≤ appendedPosition)    |
///     +---------------------------------------------------------------+
///  32 |                    hintPosition (i64, ≥ 0)                    |
///     +---------------------------------------------------------------+
///  40 |                      hintTerm (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  48 |            hintTermStart (i64, 0 ≤ … ≤ hintPosition)          |
///     +---------------------------------------------------------------+
///  56 |              bootID (u64): the follower's current boot        |
///     +---------------------------------------------------------------+  64
/// flags: bit 0 success, bit 1 catchingUp; other bits must be 0.
/// bootID is echoed in `CaughtUpFrame` so a late answer cannot release a later boot.
/// ```
public struct AppendResponseFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 64
    public static let successFlag: UInt16 = 1 << 0
    public static let catchingUpFlag: UInt16 = 1 << 1

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(
            frame, expected: .appendResponse, minimumLength: Self.length, allowedFlags: Self.successFlag | Self.catchingUpFlag)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let appended = frame.wireInt64(at: 16), persisted = frame.wireInt64(at: 24)
        let hintPosition = frame.wireInt64(at: 32), hintTermStart = frame.wireInt64(at: 48)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        try FrameCheck.nonNegative(appended, "appendedPosition")
        try FrameCheck.require(persisted >= 0 && persisted <= appended, "persistedPosition", persisted)
        try FrameCheck.nonNegative(hintPosition, "hintPosition")
        try FrameCheck.nonNegative(frame.wireInt64(at: 40), "hintTerm")
        try FrameCheck.require(hintTermStart >= 0 && hintTermStart <= hintPosition, "hintTermStart", hintTermStart)
        bytes = frame
    }

    private var flags: UInt16 { bytes.wireLoad(UInt16.self, at: 6) }
    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var success: Bool { flags & Self.successFlag != 0 }
    public var catchingUp: Bool { flags & Self.catchingUpFlag != 0 }
    public var appendedPosition: LogPosition { LogPosition(bytes.wireInt64(at: 16)) }
    public var persistedPosition: LogPosition { LogPosition(bytes.wireInt64(at: 24)) }
    public var hintPosition: LogPosition { LogPosition(bytes.wireInt64(at: 32)) }
    public var hintTerm: Term { Term(bytes.wireInt64(at: 40)) }
    public var hintTermStart: LogPosition { LogPosition(bytes.wireInt64(at: 48)) }
    public var bootID: UInt64 { bytes.wireLoad(UInt64.self, at: 56) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, success: Bool, catchingUp: Bool,
        appendedPosition: LogPosition, persistedPosition: LogPosition,
        hintPosition: LogPosition, hintTerm: Term, hintTermStart: LogPosition, bootID: UInt64
    ) -> Int {
        precondition(term.rawValue >= 0 && persistedPosition.rawValue >= 0 && persistedPosition <= appendedPosition, "bad append response")
        precondition(hintTerm.rawValue >= 0 && hintTermStart.rawValue >= 0 && hintTermStart <= hintPosition, "bad append hint")
        let flags = (success ? successFlag : 0) | (catchingUp ? catchingUpFlag : 0)
        FrameHeader.write(into: buffer, length: length, type: .appendResponse, flags: flags)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(appendedPosition.rawValue, at: 16)
        buffer.wireStore(persistedPosition.rawValue, at: 24)
        buffer.wireStore(hintPosition.rawValue, at: 32)
        buffer.wireStore(hintTerm.rawValue, at: 40)
        buffer.wireStore(hintTermStart.rawValue, at: 48)
        buffer.wireStore(bootID, at: 56)
        return length
    }
}
