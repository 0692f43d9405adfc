import KeelCore

/// What a leader knows about one follower's log, and how it is feeding it (Raft thesis §10.2.1, etcd's
/// `Progress`).
struct ReplicationProgress: Sendable {
    /// How the leader feeds the follower.
    enum State: UInt8, Sendable {
        /// The match point is unknown: one append at a time, resent after a heartbeat interval.
        case probe
        /// The match point is known: appends stream out back to back within a byte window.
        case replicate
        /// The follower needs a position before the leader's log start: a snapshot is on its way.
        case snapshot
    }

    var state: State = .probe
    /// Where the next append begins; always an entry boundary of the leader's log.
    var nextPosition: LogPosition
    /// The follower's log is known to match the leader's up to here (written, maybe not durable).
    var appendedPosition: LogPosition = .zero
    /// Acknowledged: matching and persisted on the follower. Counts towards commit.
    var matchPosition: LogPosition = .zero
    /// The follower rejoined after a power loss and acknowledges nothing until caught up.
    var catchingUp = false
    /// While catching up: the persisted position and boot it last reported (what `caughtUp` needs).
    var catchingUpPersisted: LogPosition = .zero
    var catchingUpBootID: UInt64 = 0
    /// When the outstanding probe (or snapshot) was sent; `Int64.min` when none is outstanding.
    var probeSentNanos: Int64 = .min
    /// When anything was last sent (heartbeats are suppressed while appends flow).
    var lastSendNanos: Int64 = .min
    /// When `appendedPosition` last advanced, or the pipeline last started from idle.
    var lastProgressNanos: Int64 = .min
    /// Heard from since the last check-quorum round.
    var recentlyActive = false

    init(nextPosition: LogPosition) {
        self.nextPosition = nextPosition
    }

    /// Bytes sent but not known to be appended.
    var inflightBytes: Int64 { max(0, nextPosition.bytes(since: appendedPosition)) }
}
