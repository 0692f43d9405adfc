import KeelArchive
import KeelCore
import KeelService
import Synchronization

/// What the consensus agent publishes for the service agent (and for `ClusterNode` and tests) on
/// other threads: the commit position (stored with release after the entries below it are in the
/// log, loaded with acquire), the role, term and leader; and how to wake each agent.
public final class SharedNodeState: Sendable {
    /// Entries below this position are committed and may be applied.
    public let commitPosition = Atomic<Int64>(0)
    /// The service agent has applied every entry below this position.
    public let appliedPosition = Atomic<Int64>(0)
    /// `ClusterRole.rawValue` of this member.
    public let role = Atomic<UInt8>(ClusterRole.follower.rawValue)
    /// The current term.
    public let term = Atomic<Int64>(0)
    /// The known leader's member id, or -1.
    public let leaderID = Atomic<Int32>(-1)
    /// Leader: the position of its leadership entry. Its replica sends egress only for entries from
    /// there on; responses to earlier entries (which an old leader may already have sent) reach a
    /// client only re-sent from the window, when it retries what it has not seen answered.
    public let leaderEgressStart = Atomic<Int64>(Int64.max)
    /// The end of the local log.
    public let appendedPosition = Atomic<Int64>(0)
    /// Messages the service applied (for tests and counters).
    public let messagesApplied = Atomic<Int64>(0)
    /// Snapshots this member's service agent wrote, and the position of the last one (−1: none yet).
    public let snapshotsTaken = Atomic<Int64>(0)
    public let lastSnapshotPosition = Atomic<Int64>(-1)
    /// The position of the oldest snapshot the archive keeps, once it keeps as many as configured
    /// (−1: not yet). Stored (release) by the service agent after a snapshot and the catalog are
    /// durable; the consensus agent compacts the log up to at most here (ConsensusAgent+Compaction).
    public let compactionBound = Atomic<Int64>(-1)
    /// Snapshots that failed (a full disk, a service that threw): the previous ones stay.
    public let snapshotsFailed = Atomic<Int64>(0)
    /// The service agent has restored its snapshot and replayed the local log it found at start.
    public let replayDone = Atomic<Bool>(false)
    /// Snapshots loaded at start (0 or 1) and rejected at start (set aside, an older one tried).
    public let snapshotsLoaded = Atomic<Int64>(0)
    public let snapshotsRejected = Atomic<Int64>(0)
    /// Nanoseconds the last snapshot took to write, the start's snapshot load, and the start's
    /// replay of the local log (−1: not measured, or not done yet).
    public let lastSnapshotDurationNanos = Atomic<Int64>(-1)
    public let snapshotLoadNanos = Atomic<Int64>(-1)
    public let replayNanos = Atomic<Int64>(-1)
    /// The cluster is suspended as of the last entry applied (`keel tool suspend`).
    public let suspended = Atomic<Bool>(false)
    /// The service agent applied a shutdown entry (live, not in a replay) and wrote its final
    /// snapshot: the entry's end position (−1: none).
    public let shutdownPosition = Atomic<Int64>(-1)
    /// The node may exit now (after a shutdown: applied, and on the leader the followers told).
    public let exitRequested = Atomic<Bool>(false)
    /// What the service agent tells the consensus agent (timers, service closes, applied position).
    public let serviceRequests = ServiceRequestQueue()
    /// A snapshot received from the leader, on its way from the consensus agent to the service
    /// agent (which installs it) and back.
    public let snapshotInstall = SnapshotInstallHandoff()
    /// The newest snapshot in this node's archive (kept by the service agent): what a leader ships
    /// to a follower that needs positions before its log start.
    public let newestSnapshot = Mutex<SnapshotEntry?>(nil)
    /// Wakes the service agent (its idle strategy may be waiting in the kernel).
    public let wakeService: @Sendable () -> Void
    /// Wakes the consensus agent (egress was queued).
    public let wakeConsensus: @Sendable () -> Void

    public init(wakeService: @escaping @Sendable () -> Void = {}, wakeConsensus: @escaping @Sendable () -> Void = {}) {
        self.wakeService = wakeService
        self.wakeConsensus = wakeConsensus
    }

    /// The current role (acquire).
    public var currentRole: ClusterRole { ClusterRole(rawValue: role.load(ordering: .acquiring)) ?? .follower }
    /// The known leader, if any.
    public var currentLeader: MemberID? {
        let raw = leaderID.load(ordering: .acquiring)
        return raw < 0 ? nil : MemberID(raw)
    }
}

import KeelLog

/// The reader of a node's committed log, as the service agent takes it (re-exported so that
/// KeelNode, which does not import KeelLog, can hand it over).
public typealias CommittedLogReader = LogReader

extension ConsensusAgent {
    /// A reader of this agent's log for the service agent, usable on any thread.
    public var committedReader: CommittedLogReader { log.reader }
}
