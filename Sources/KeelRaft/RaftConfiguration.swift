import KeelCore

/// The fixed settings of one member's Raft core. Defaults follow DESIGN.md ("Defaults worth writing down").
public struct RaftConfiguration: Sendable {
    /// This member.
    public var selfID: MemberID
    /// Every voting member, this one included (3, 5 or 7 in production). Kept in the core's state rather
    /// than assumed: membership changes will arrive as `configurationChange` entries.
    public var members: [MemberID]
    /// What an acknowledgement promises (DESIGN.md decision 7).
    public var durability: DurabilityMode
    /// How often a leader sends heartbeats to a follower that received nothing else.
    public var heartbeatIntervalNanos: Int64 = 50_000_000
    /// The election timeout is drawn uniformly from this range at every reset.
    public var electionTimeoutMinNanos: Int64 = 300_000_000
    /// Upper end of the election timeout range.
    public var electionTimeoutMaxNanos: Int64 = 600_000_000
    /// Ask for pre-votes before raising the term.
    public var preVote: Bool = true
    /// A leader that heard from no majority for one election timeout steps down; followers that heard
    /// from a leader within the minimum election timeout refuse to vote for others.
    public var checkQuorum: Bool = true
    /// Most bytes one AppendEntries names.
    public var appendBytesMax: Int64 = 1 << 20
    /// Most bytes in flight (sent, not yet acknowledged) per follower in the replicate state.
    public var windowBytesMax: Int64 = 8 << 20
    /// A follower in the replicate state that acknowledged nothing new for this long, while bytes were in
    /// flight, is probed again (its appends were probably lost).
    public var replicateTimeoutNanos: Int64 = 150_000_000
    /// Length of the entry a new leader appends at once (a multiple of the log's frame alignment).
    public var leadershipTermEntryBytes: Int64 = 64
    /// Test-only: a deliberate bug for checking the simulator's checkers. Nil in production.
    public var plantedBug: RaftPlantedBug? = nil

    public init(selfID: MemberID, members: [MemberID], durability: DurabilityMode) {
        precondition(members.contains(selfID), "the member list must include this member")
        precondition(Set(members).count == members.count, "member ids must be distinct")
        self.selfID = selfID
        self.members = members
        self.durability = durability
    }

    /// The number of members that form a majority.
    public var quorum: Int { members.count / 2 + 1 }
}
