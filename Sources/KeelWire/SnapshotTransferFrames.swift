import KeelCore

// Snapshot transfer on the member connection, besides the chunks (SnapshotChunkFrame): the
// leader's offer, the follower's acknowledgement (where to resume; installed), and an abort from
// either side. docs/wire-protocol.md draws the exchange.

/// Leader → follower: "I will send you this snapshot". Answered with a snapshot-ack naming the
/// offset to start from (0, or where a transfer of the same snapshot broke off).
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 56           |version| 0x39  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                   term: sender's term (i64, ≥ 0)              |
///     +---------------------------------------------------------------+
///  16 |                       snapshotID (i64, ≥ 0)                   |
///     +---------------------------------------------------------------+
///  24 |         snapshotPosition (i64, ≥ 0): log position it holds    |
///     +---------------------------------------------------------------+
///  32 |       snapshotTerm (i64, 0 ≤ … ≤ term): term at that position |
///     +---------------------------------------------------------------+
///  40 |                  totalBytes (i64, ≥ 160): file length          |
///     +-------------------------------+-------------------------------+
///  48 | wholeCRC (u32): over the file |           0 (u32)             |
///     | before its trailer            |                               |
///     +-------------------------------+-------------------------------+  56
/// ```
public struct SnapshotOfferFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 56
    /// The smallest snapshot file: a 128-byte header and a 32-byte trailer record.
    public static let minimumTotalBytes: Int64 = 160

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .snapshotOffer, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let term = frame.wireInt64(at: 8), snapshotTerm = frame.wireInt64(at: 32)
        try FrameCheck.nonNegative(term, "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "snapshotID")
        try FrameCheck.nonNegative(frame.wireInt64(at: 24), "snapshotPosition")
        try FrameCheck.require(snapshotTerm >= 0 && snapshotTerm <= term, "snapshotTerm", snapshotTerm)
        try FrameCheck.require(frame.wireInt64(at: 40) >= Self.minimumTotalBytes, "totalBytes", frame.wireInt64(at: 40))
        try FrameCheck.reservedZero(frame, at: 52, count: 4)
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var snapshotID: Int64 { bytes.wireInt64(at: 16) }
    public var snapshotPosition: LogPosition { LogPosition(bytes.wireInt64(at: 24)) }
    public var snapshotTerm: Term { Term(bytes.wireInt64(at: 32)) }
    public var totalBytes: Int64 { bytes.wireInt64(at: 40) }
    public var wholeCRC: UInt32 { bytes.wireLoad(UInt32.self, at: 48) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, snapshotID: Int64, snapshotPosition: LogPosition, snapshotTerm: Term,
        totalBytes: Int64, wholeCRC: UInt32
    ) -> Int {
        precondition(term.rawValue >= 0 && snapshotID >= 0 && snapshotPosition.rawValue >= 0, "bad snapshot identity")
        precondition(snapshotTerm.rawValue >= 0 && snapshotTerm <= term, "snapshot term beyond the sender's term")
        precondition(totalBytes >= minimumTotalBytes, "a snapshot file has at least 160 bytes")
        FrameHeader.write(into: buffer, length: length, type: .snapshotOffer)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(snapshotID, at: 16)
        buffer.wireStore(snapshotPosition.rawValue, at: 24)
        buffer.wireStore(snapshotTerm.rawValue, at: 32)
        buffer.wireStore(totalBytes, at: 40)
        buffer.wireStore(wholeCRC, at: 48)
        buffer.wireStore(UInt32(0), at: 52)
        return length
    }
}

/// What a snapshot-ack reports.
public enum SnapshotAckStatus: UInt8, Sendable, CustomStringConvertible {
    /// Receiving: send from `nextOffset` on (after an offer, a gap, and every so often as chunks land).
    case receiving = 0
    /// Every byte arrived and checked; the follower is installing it (`nextOffset` = total).
    case received = 1
    /// Installed: the follower's log starts at the snapshot's position; replication resumes from there.
    case installed = 2

    public var description: String {
        switch self {
        case .receiving: "receiving"
        case .received: "received"
        case .installed: "installed"
        }
    }
}

/// Follower → leader: the answer to an offer and to chunks.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 40           |version| 0x3A  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  16 |                       snapshotID (i64, ≥ 0)                   |
///     +---------------------------------------------------------------+
///  24 |          nextOffset (i64, ≥ 0): the next byte it needs        |
///     +-------+-------+-----------------------------------------------+
///  32 |status |   0   |                  0 (6 bytes)                  |
///     +-------+-------+-----------------------------------------------+  40
/// status: 0 receiving, 1 received (checking and installing), 2 installed
/// ```
public struct SnapshotAckFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 40

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .snapshotAck, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "snapshotID")
        try FrameCheck.nonNegative(frame.wireInt64(at: 24), "nextOffset")
        let status = frame.wireLoad(UInt8.self, at: 32)
        try FrameCheck.require(SnapshotAckStatus(rawValue: status) != nil, "status", Int64(status))
        try FrameCheck.reservedZero(frame, at: 33, count: 7)
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var snapshotID: Int64 { bytes.wireInt64(at: 16) }
    public var nextOffset: Int64 { bytes.wireInt64(at: 24) }
    public var status: SnapshotAckStatus { SnapshotAckStatus(rawValue: bytes.wireLoad(UInt8.self, at: 32))! }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, term: Term, snapshotID: Int64, nextOffset: Int64, status: SnapshotAckStatus
    ) -> Int {
        precondition(term.rawValue >= 0 && snapshotID >= 0 && nextOffset >= 0, "negative snapshot ack field")
        FrameHeader.write(into: buffer, length: length, type: .snapshotAck)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(snapshotID, at: 16)
        buffer.wireStore(nextOffset, at: 24)
        buffer.wireStore(UInt64(status.rawValue), at: 32)
        return length
    }
}

/// Why a snapshot transfer was given up.
public enum SnapshotAbortReason: UInt16, Sendable, CustomStringConvertible {
    /// Follower: it does not need this snapshot (its commit position is already at or past it, or it leads).
    case notNeeded = 1
    /// Follower: the complete file failed verification (checksum, header, cluster id); it was removed.
    case verificationFailed = 2
    /// Follower: writing or installing it failed locally (disk); the reason is in its log.
    case installFailed = 3
    /// Leader: the snapshot cannot be read any more (removed, damaged); a newer offer may follow.
    case sourceUnavailable = 4
    /// Leader: this member no longer leads.
    case leadershipLost = 5

    public var description: String {
        switch self {
        case .notNeeded: "not needed"
        case .verificationFailed: "verification failed"
        case .installFailed: "install failed"
        case .sourceUnavailable: "source unavailable"
        case .leadershipLost: "leadership lost"
        }
    }
}

/// Either direction: the transfer of `snapshotID` is given up; the receiver drops its partial file.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 32           |version| 0x3B  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                          term (i64, ≥ 0)                      |
///     +---------------------------------------------------------------+
///  16 |                       snapshotID (i64, ≥ 0)                   |
///     +---------------+-----------------------------------------------+
///  24 | reason (u16)  |                  0 (6 bytes)                  |
///     +---------------+-----------------------------------------------+  32
/// ```
public struct SnapshotAbortFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .snapshotAbort, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 8), "term")
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "snapshotID")
        let reason = frame.wireLoad(UInt16.self, at: 24)
        try FrameCheck.require(SnapshotAbortReason(rawValue: reason) != nil, "reason", Int64(reason))
        try FrameCheck.reservedZero(frame, at: 26, count: 6)
        bytes = frame
    }

    public var term: Term { Term(bytes.wireInt64(at: 8)) }
    public var snapshotID: Int64 { bytes.wireInt64(at: 16) }
    public var reason: SnapshotAbortReason { SnapshotAbortReason(rawValue: bytes.wireLoad(UInt16.self, at: 24))! }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, term: Term, snapshotID: Int64, reason: SnapshotAbortReason) -> Int {
        precondition(term.rawValue >= 0 && snapshotID >= 0, "negative snapshot abort field")
        FrameHeader.write(into: buffer, length: length, type: .snapshotAbort)
        buffer.wireStore(term.rawValue, at: 8)
        buffer.wireStore(snapshotID, at: 16)
        buffer.wireStore(UInt64(reason.rawValue), at: 24)
        return length
    }
}
