import KeelCore
import KeelRaft

/// How one seed of the Raft simulator runs.
public struct RaftSimulationOptions: Sendable {
    /// 3 or 5 members (any odd count up to 7 works).
    public var memberCount: Int = 3
    /// The durability mode every member runs in; the checkers hold it to exactly its promise.
    public var mode: DurabilityMode = .durable
    /// Events processed while faults are injected (then the network heals and liveness is checked).
    public var faultSteps: Int = 2_000
    /// Test-only: a bug planted in every member's core.
    public var plantedBug: RaftPlantedBug? = nil
    /// After healing, a leader must be elected and every proposal it accepted committed within this long
    /// (DESIGN.md: 10× the maximum election timeout).
    public var livenessBoundNanos: Int64 = 6_000_000_000
    /// Mean virtual time between injected faults.
    public var meanFaultIntervalNanos: Int64 = 150_000_000
    /// Mean virtual time between client proposals.
    public var meanProposalIntervalNanos: Int64 = 8_000_000
    /// Share of faults that are power losses (the rest: process crashes, partitions, loss bursts, transfers,
    /// compactions). Lower in replicated mode, where overlapping power losses legitimately stop the cluster
    /// and end the useful part of a seed.
    public var powerLossShare: Double

    /// Print every step (input and actions) of the run, for replaying a failing seed by hand.
    public var trace = false

    public init(memberCount: Int = 3, mode: DurabilityMode = .durable, faultSteps: Int = 2_000, plantedBug: RaftPlantedBug? = nil) {
        self.memberCount = memberCount
        self.mode = mode
        self.faultSteps = faultSteps
        self.plantedBug = plantedBug
        self.powerLossShare = mode == .replicated ? 0.06 : 0.12
    }
}

/// What one seed did.
public struct RaftSimulationResult: Sendable {
    /// The seed, for replaying.
    public var seed: UInt64
    /// Events processed in total (fault phase and liveness phase).
    public var steps: Int = 0
    /// Faults injected (crashes, power losses, partitions, loss bursts, transfers, compactions).
    public var faultsInjected: Int = 0
    /// Members that became leader (one per term at most).
    public var elections: Int = 0
    /// Entries committed (distinct positions in the committed history).
    public var committedEntries: Int = 0
    /// Virtual nanoseconds from healing to a leader that committed an entry of its term; nil if none
    /// (a legitimate stop, or a violation).
    public var healToLeaderNanos: Int64? = nil
    /// Every stretch of virtual time the cluster spent with no leader, from the moment the last leader
    /// was lost (crash, step-down) until a member won an election.
    public var leaderlessNanos: [Int64] = []
    /// The cluster stopped as replicated mode promises after a majority lost power (no leader, no divergence).
    public var stoppedAfterMajorityPowerLoss = false
    /// The first broken rule, if any.
    public var violation: String? = nil

    public init(seed: UInt64) { self.seed = seed }
}
