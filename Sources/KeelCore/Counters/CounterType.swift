/// What a counter measures: a stable numeric id stored in its slot, so a reader built from another
/// version still knows what it reads. Ids are never reused; new kinds take new ids.
///
/// Families: 1–999 single node counters; 1000 + reason code: frames rejected for that reason;
/// 2000 + `ErrorKind` id: errors of that kind.
public struct CounterType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// The member's Raft role; values in `RoleCounterValue`.
    public static let role = CounterType(rawValue: 1)
    /// The current term.
    public static let term = CounterType(rawValue: 2)
    /// Where the member is in an election; values in `ElectionStateCounterValue`.
    public static let electionState = CounterType(rawValue: 3)
    /// The log position appended up to (bytes).
    public static let appendPosition = CounterType(rawValue: 4)
    /// The commit position (bytes).
    public static let commitPosition = CounterType(rawValue: 5)
    /// The position covered by fdatasync (bytes).
    public static let durablePosition = CounterType(rawValue: 6)
    /// Connections open now.
    public static let connections = CounterType(rawValue: 7)
    /// Bytes received.
    public static let bytesIn = CounterType(rawValue: 8)
    /// Bytes sent.
    public static let bytesOut = CounterType(rawValue: 9)
    /// Frames received.
    public static let framesIn = CounterType(rawValue: 10)
    /// Frames sent.
    public static let framesOut = CounterType(rawValue: 11)
    /// Offers refused because a send queue was full.
    public static let backPressureEvents = CounterType(rawValue: 12)
    /// Member handshakes refused (unknown member, other cluster, other configuration).
    public static let handshakesRefused = CounterType(rawValue: 13)
    /// Peers disconnected because they stopped reading.
    public static let stalledPeersDisconnected = CounterType(rawValue: 14)
    /// Snapshots this member wrote since it started.
    public static let snapshotsTaken = CounterType(rawValue: 15)
    /// Snapshots that failed to be written (the previous ones stay).
    public static let snapshotsFailed = CounterType(rawValue: 16)
    /// Snapshots loaded at start (0 or 1).
    public static let snapshotsLoaded = CounterType(rawValue: 17)
    /// Snapshots that failed verification at start (set aside; an older one was tried).
    public static let snapshotsRejected = CounterType(rawValue: 18)
    /// The log position of the last snapshot taken or loaded (−1: none).
    public static let snapshotPosition = CounterType(rawValue: 19)
    /// How long writing the last snapshot took, in nanoseconds (−1: none yet).
    public static let snapshotDurationNanos = CounterType(rawValue: 20)
    /// How long the service took to load the snapshot at start, in nanoseconds (−1: not yet, or none).
    public static let snapshotLoadNanos = CounterType(rawValue: 21)
    /// How long replaying the local log after the snapshot took at start, in nanoseconds (−1: not done yet).
    public static let replayNanos = CounterType(rawValue: 22)
    /// Where the log begins (bytes; moves forward when the log is compacted after snapshots).
    public static let logStartPosition = CounterType(rawValue: 23)

    static let rejectedFramesBase: Int32 = 1000
    static let errorsBase: Int32 = 2000
    static let familyWidth: Int32 = 1000

    /// Frames rejected for the wire rejection reason with `reasonCode` (KeelWire's `WireRejectionReason.rawValue`).
    public static func rejectedFrames(reasonCode: Int) -> CounterType {
        precondition(reasonCode >= 0 && reasonCode < Int(familyWidth), "rejection reason code out of range")
        return CounterType(rawValue: rejectedFramesBase + Int32(reasonCode))
    }

    /// Errors of `kind`.
    public static func errors(kind: ErrorKind) -> CounterType {
        precondition(kind.rawValue >= 0 && kind.rawValue < familyWidth, "error kind id out of range")
        return CounterType(rawValue: errorsBase + kind.rawValue)
    }

    /// A short name of the kind of counter.
    public var description: String {
        switch rawValue {
        case 1: "role"
        case 2: "term"
        case 3: "election-state"
        case 4: "append-position"
        case 5: "commit-position"
        case 6: "durable-position"
        case 7: "connections"
        case 8: "bytes-in"
        case 9: "bytes-out"
        case 10: "frames-in"
        case 11: "frames-out"
        case 12: "back-pressure-events"
        case 13: "handshakes-refused"
        case 14: "stalled-peers-disconnected"
        case 15: "snapshots-taken"
        case 16: "snapshots-failed"
        case 17: "snapshots-loaded"
        case 18: "snapshots-rejected"
        case 19: "snapshot-position"
        case 20: "snapshot-duration-ns"
        case 21: "snapshot-load-ns"
        case 22: "replay-ns"
        case 23: "log-start-position"
        case Self.rejectedFramesBase..<(Self.rejectedFramesBase + Self.familyWidth): "rejected-frames"
        case Self.errorsBase..<(Self.errorsBase + Self.familyWidth): "errors"
        default: "type-\(rawValue)"
        }
    }

    /// The value as an operator reads it: role and election state by name, others as numbers.
    public func describe(value: Int64) -> String {
        switch self {
        case .role: RoleCounterValue(rawValue: value).map { "\($0)" } ?? "\(value)"
        case .electionState: ElectionStateCounterValue(rawValue: value).map { "\($0)" } ?? "\(value)"
        default: "\(value)"
        }
    }
}

/// Values of the `role` counter (the first four match KeelRaft's `RaftRole` raw values).
public enum RoleCounterValue: Int64, Sendable, CaseIterable, CustomStringConvertible {
    case follower = 0, preCandidate = 1, candidate = 2, leader = 3
    /// A member that votes on nothing until caught up (replicated mode after a power loss).
    case learner = 4
    public var description: String {
        switch self {
        case .follower: "follower"
        case .preCandidate: "pre-candidate"
        case .candidate: "candidate"
        case .leader: "leader"
        case .learner: "learner"
        }
    }
}

/// Values of the `electionState` counter.
public enum ElectionStateCounterValue: Int64, Sendable, CaseIterable, CustomStringConvertible {
    /// A leader is known (or this member leads).
    case settled = 0
    /// No leader known; waiting for the election timeout.
    case awaitingLeader = 1
    /// Asking for pre-votes.
    case preVote = 2
    /// Asking for votes in a raised term.
    case vote = 3
    /// Handing leadership to another member.
    case transferringLeadership = 4
    public var description: String {
        switch self {
        case .settled: "settled"
        case .awaitingLeader: "awaiting-leader"
        case .preVote: "pre-vote"
        case .vote: "vote"
        case .transferringLeadership: "transferring-leadership"
        }
    }
}

/// A kind of error, for the errors-by-kind counters and the error log. Ids are stable; add new
/// kinds with new ids.
public struct ErrorKind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Disk I/O failed (write, fdatasync, map, full disk).
    public static let storage = ErrorKind(rawValue: 1)
    /// A socket operation failed (connect, send, receive).
    public static let transport = ErrorKind(rawValue: 2)
    /// A peer sent a malformed frame.
    public static let protocolViolation = ErrorKind(rawValue: 3)
    /// A member handshake was refused.
    public static let handshake = ErrorKind(rawValue: 4)
    /// The consensus layer met an unexpected condition.
    public static let consensus = ErrorKind(rawValue: 5)
    /// The user's service threw.
    public static let service = ErrorKind(rawValue: 6)
    /// The configuration or node directory is unusable.
    public static let configuration = ErrorKind(rawValue: 7)
    /// A bug: an invariant that should hold did not.
    public static let `internal` = ErrorKind(rawValue: 8)

    /// Every kind this build defines, in id order.
    public static let known: [ErrorKind] = [.storage, .transport, .protocolViolation, .handshake, .consensus, .service, .configuration, .internal]

    public var description: String {
        switch rawValue {
        case 1: "storage"
        case 2: "transport"
        case 3: "protocol"
        case 4: "handshake"
        case 5: "consensus"
        case 6: "service"
        case 7: "configuration"
        case 8: "internal"
        default: "kind-\(rawValue)"
        }
    }
}
