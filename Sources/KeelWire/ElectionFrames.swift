import KeelCore

// The Raft core's small fixed-size messages: heartbeats, votes and leadership transfer.
// Encoders take primitive fields; the runtime maps `RaftMessage` bodies onto them.

/// Leader → follower: "I am still here", with the leader's commit position.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 24           |version| 0x32  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  16 |                     leaderCommit (i64, ≥ 0)                   |
///     +---------------------------------------------------------------+  24
/// ```
public struct HeartbeatFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 24

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .heartbeat, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "leaderCommit")
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var leaderCommit: LogPosition { LogPosition(bytes.wireInt64(at: 16)) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, term: Term, leaderCommit: LogPosition) -> Int {
        precondition(term.rawValue >= 0 && leaderCommit.rawValue >= 0, "negative term or position")
        FrameHeader.write(into: buffer, length: length, type: .heartbeat)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(leaderCommit.rawValue, at: 16)
        return length
    }
}

/// Follower → leader: the answer to a heartbeat.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 24           |version| 0x33  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  16 |                   appendedPosition (i64, ≥ 0)                 |
///     +---------------------------------------------------------------+  24
/// ```
public struct HeartbeatResponseFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 24

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .heartbeatResponse, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "appendedPosition")
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var appendedPosition: LogPosition { LogPosition(bytes.wireInt64(at: 16)) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, term: Term, appendedPosition: LogPosition) -> Int {
        precondition(term.rawValue >= 0 && appendedPosition.rawValue >= 0, "negative term or position")
        FrameHeader.write(into: buffer, length: length, type: .heartbeatResponse)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(appendedPosition.rawValue, at: 16)
        return length
    }
}

/// Candidate or pre-candidate → all: please vote for me.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 32           |version| 0x34  |     flags     |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |     term (i64, ≥ 0; for a pre-vote the term it would use)     |
///     +---------------------------------------------------------------+
///  16 |                    lastPosition (i64, ≥ 0)                    |
///     +---------------------------------------------------------------+
///  24 |                   lastTerm (i64, 0 ≤ … ≤ term)                |
///     +---------------------------------------------------------------+  32
/// flags: bit 0 preVote, bit 1 transfer; other bits must be 0.
/// ```
public struct VoteRequestFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 32
    public static let preVoteFlag: UInt16 = 1 << 0
    public static let transferFlag: UInt16 = 1 << 1

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(
            frame, expected: .voteRequest, minimumLength: Self.length, allowedFlags: Self.preVoteFlag | Self.transferFlag)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let term = frame.wireInt64(at: 8), lastTerm = frame.wireInt64(at: 24)
        try FrameCheck.nonNegative(term, "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "lastPosition")
        try FrameCheck.require(lastTerm >= 0 && lastTerm <= term, "lastTerm", lastTerm)
        bytes = frame
    }

    private var flags: UInt16 { bytes.wireLoad(UInt16.self, at: 6) }
    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var preVote: Bool { flags & Self.preVoteFlag != 0 }
    public var transfer: Bool { flags & Self.transferFlag != 0 }
    public var lastPosition: LogPosition { LogPosition(bytes.wireInt64(at: 16)) }
    public var lastTerm: Term { Term(bytes.wireInt64(at: 24)) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, preVote: Bool, transfer: Bool,
        lastPosition: LogPosition, lastTerm: Term
    ) -> Int {
        precondition(term.rawValue >= 0 && lastPosition.rawValue >= 0, "negative term or position")
        precondition(lastTerm.rawValue >= 0 && lastTerm <= term, "last term beyond the candidate's term")
        FrameHeader.write(
            into: buffer, length: length, type: .voteRequest, flags: (preVote ? preVoteFlag : 0) | (transfer ? transferFlag : 0))
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(lastPosition.rawValue, at: 16)
        buffer.wireStore(lastTerm.rawValue, at: 24)
        return length
    }
}

/// The answer to a vote request.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 16           |version| 0x35  |     flags     |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+  16
/// flags: bit 0 preVote, bit 1 granted; other bits must be 0.
/// ```
public struct VoteResponseFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 16
    public static let preVoteFlag: UInt16 = 1 << 0
    public static let grantedFlag: UInt16 = 1 << 1

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(
            frame, expected: .voteResponse, minimumLength: Self.length, allowedFlags: Self.preVoteFlag | Self.grantedFlag)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        bytes = frame
    }

    private var flags: UInt16 { bytes.wireLoad(UInt16.self, at: 6) }
    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var preVote: Bool { flags & Self.preVoteFlag != 0 }
    public var granted: Bool { flags & Self.grantedFlag != 0 }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, term: Term, preVote: Bool, granted: Bool) -> Int {
        precondition(term.rawValue >= 0, "negative term")
        FrameHeader.write(
            into: buffer, length: length, type: .voteResponse, flags: (preVote ? preVoteFlag : 0) | (granted ? grantedFlag : 0))
        buffer.wireStore(term.rawValue, at: 8)
        return length
    }
}

/// Leader → transfer target: start an election now.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 16           |version| 0x36  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+  16
/// ```
public struct TimeoutNowFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 16

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .timeoutNow, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, term: Term) -> Int {
        precondition(term.rawValue >= 0, "negative term")
        FrameHeader.write(into: buffer, length: length, type: .timeoutNow)
        buffer.wireStore(term.rawValue, at: 8)
        return length
    }
}

/// Leader → member rejoining after a power loss (replicated mode): you hold everything up to
/// `position`, a commit position of my term; become voting again if `bootID` is still your boot.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 32           |version| 0x38  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  16 |                      position (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  24 |      bootID (u64): the boot echoed from its append response   |
///     +---------------------------------------------------------------+  32
/// ```
public struct CaughtUpFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .caughtUp, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "position")
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var position: LogPosition { LogPosition(bytes.wireInt64(at: 16)) }
    public var bootID: UInt64 { bytes.wireLoad(UInt64.self, at: 24) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, term: Term, position: LogPosition, bootID: UInt64) -> Int {
        precondition(term.rawValue >= 0 && position.rawValue >= 0, "negative term or position")
        FrameHeader.write(into: buffer, length: length, type: .caughtUp)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(position.rawValue, at: 16)
        buffer.wireStore(bootID, at: 24)
        return length
    }
}
