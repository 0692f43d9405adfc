/// The counters a node keeps (issue 5 §4), allocated together at start-up in one region.
///
/// Ownership: the consensus agent writes role, term, election state and the positions, and (as it
/// runs the transport) the connection, byte, frame, rejection and back-pressure counters; whoever
/// records an error increments its kind's counter from that agent. One writer per counter. The
/// snapshot counters are copied by the consensus agent, once a millisecond, from what the service
/// agent publishes in `SharedNodeState`.
public struct NodeCounters: Sendable {
    public let role: Counter
    public let term: Counter
    public let electionState: Counter
    public let appendPosition: Counter
    public let commitPosition: Counter
    public let durablePosition: Counter
    public let connections: Counter
    public let bytesIn: Counter
    public let bytesOut: Counter
    public let framesIn: Counter
    public let framesOut: Counter
    public let backPressureEvents: Counter
    public let handshakesRefused: Counter
    public let stalledPeersDisconnected: Counter
    public let snapshotsTaken: Counter
    public let snapshotsFailed: Counter
    public let snapshotsLoaded: Counter
    public let snapshotsRejected: Counter
    public let snapshotPosition: Counter
    public let snapshotDurationNanos: Counter
    public let snapshotLoadNanos: Counter
    public let replayNanos: Counter
    public let logStartPosition: Counter
    private let rejectedByReason: [Counter]
    private let errorsByKind: [Int32: Counter]

    private static let singleCounterCount = 23

    /// Slots needed for the set with `rejectionReasonCount` reasons and `errorKinds`.
    public static func slotCount(rejectionReasonCount: Int, errorKinds: [ErrorKind] = ErrorKind.known) -> Int {
        singleCounterCount + rejectionReasonCount + errorKinds.count
    }

    /// Allocates the set in `writer`. `rejectionReasons[code]` names the wire rejection reason with
    /// that code (KeelWire's `WireRejectionReason.allCases.map(\.description)`). The region must
    /// have room for `slotCount(...)` more counters.
    public init(writer: CountersWriter, rejectionReasons: [String], errorKinds: [ErrorKind] = ErrorKind.known) {
        let needed = Self.slotCount(rejectionReasonCount: rejectionReasons.count, errorKinds: errorKinds)
        precondition(writer.capacity - writer.allocatedCount >= needed, "counters region has no room for the node's \(needed) counters")
        func make(_ type: CounterType, _ label: String, _ initial: Int64 = 0) -> Counter {
            writer.allocate(type: type, label: label, initialValue: initial)!
        }
        role = make(.role, "role", RoleCounterValue.follower.rawValue)
        term = make(.term, "term")
        electionState = make(.electionState, "election state", ElectionStateCounterValue.awaitingLeader.rawValue)
        appendPosition = make(.appendPosition, "append position")
        commitPosition = make(.commitPosition, "commit position")
        durablePosition = make(.durablePosition, "durable position")
        connections = make(.connections, "connections")
        bytesIn = make(.bytesIn, "bytes in")
        bytesOut = make(.bytesOut, "bytes out")
        framesIn = make(.framesIn, "frames in")
        framesOut = make(.framesOut, "frames out")
        backPressureEvents = make(.backPressureEvents, "back-pressure events")
        handshakesRefused = make(.handshakesRefused, "handshakes refused")
        stalledPeersDisconnected = make(.stalledPeersDisconnected, "stalled peers disconnected")
        snapshotsTaken = make(.snapshotsTaken, "snapshots taken")
        snapshotsFailed = make(.snapshotsFailed, "snapshots failed")
        snapshotsLoaded = make(.snapshotsLoaded, "snapshots loaded")
        snapshotsRejected = make(.snapshotsRejected, "snapshots rejected")
        snapshotPosition = make(.snapshotPosition, "snapshot position", -1)
        snapshotDurationNanos = make(.snapshotDurationNanos, "snapshot duration ns", -1)
        snapshotLoadNanos = make(.snapshotLoadNanos, "snapshot load ns", -1)
        replayNanos = make(.replayNanos, "replay ns", -1)
        logStartPosition = make(.logStartPosition, "log start position")
        rejectedByReason = rejectionReasons.enumerated().map { code, name in
            make(.rejectedFrames(reasonCode: code), "rejected frames: \(name)")
        }
        var errors: [Int32: Counter] = [:]
        for kind in errorKinds { errors[kind.rawValue] = make(.errors(kind: kind), "errors: \(kind)") }
        errorsByKind = errors
    }

    /// The counter of frames rejected for the reason with `reasonCode`.
    public func rejectedFrames(reasonCode: Int) -> Counter {
        precondition(reasonCode >= 0 && reasonCode < rejectedByReason.count, "no counter for rejection reason \(reasonCode)")
        return rejectedByReason[reasonCode]
    }

    /// The counter of errors of `kind` (which must have been given at allocation).
    public func errors(kind: ErrorKind) -> Counter {
        guard let counter = errorsByKind[kind.rawValue] else { preconditionFailure("no counter for error kind \(kind)") }
        return counter
    }
}
