import KeelCore

/// The role a member plays in the current term.
public enum RaftRole: UInt8, Sendable, CustomStringConvertible {
    /// Follows the leader of the current term (or waits for one).
    case follower
    /// Asks for pre-votes without raising its term, so a member that was cut off cannot depose a
    /// healthy leader by coming back with an inflated term (Raft thesis §9.6).
    case preCandidate
    /// Raised its term, voted for itself and asks the others for their votes.
    case candidate
    /// Accepts proposals, replicates the log and decides the commit position.
    case leader

    public var description: String {
        switch self {
        case .follower: "follower"
        case .preCandidate: "pre-candidate"
        case .candidate: "candidate"
        case .leader: "leader"
        }
    }
}

/// What must survive every crash and power loss: written and fdatasync'ed by the runtime before any
/// message that follows a `persistHardState` action is sent (in both durability modes).
public struct RaftHardState: Hashable, Sendable, CustomStringConvertible {
    /// The latest term this member has seen.
    public var term: Term
    /// The member this member voted for in `term`, if any. At most one vote per term.
    public var votedFor: MemberID?
    /// The boot (kernel boot id, or any value that changes at every power cycle) during which this member
    /// last held a log known to be caught up. In `replicated` mode a member whose current boot differs
    /// may have lost acknowledged writes with the page cache, so it rejoins non-voting until a current
    /// leader has caught it up (DESIGN.md decision 7). Ignored in `durable` mode, except for
    /// `forgottenBootID`.
    public var votingBootID: UInt64

    /// The voting boot of a member that lost its whole state (its directory was wiped, and it
    /// rejoins under the same member id): whatever it voted and acknowledged before is forgotten,
    /// so in either mode it neither votes nor acknowledges until a current leader has caught it up.
    public static let forgottenBootID: UInt64 = 0

    public init(term: Term = .zero, votedFor: MemberID? = nil, votingBootID: UInt64) {
        self.term = term
        self.votedFor = votedFor
        self.votingBootID = votingBootID
    }

    public var description: String {
        "term \(term.rawValue) votedFor \(votedFor.map { "\($0)" } ?? "-") boot \(votingBootID)"
    }
}

/// Where the bytes of an `append` action come from; the core only names positions.
public enum RaftEntryKind: UInt8, Sendable {
    /// Bytes received from the leader in the message that produced the action.
    case replicated
    /// The batch this (leader) member was just asked to propose.
    case proposal
    /// A new-leadership-term entry the (new) leader writes at once, so that entries of earlier terms
    /// can commit (Raft §5.4.2). The runtime writes a frame of that type filling the range.
    case leadershipTerm
    /// Reserved for membership changes; the core does not produce it yet.
    case configurationChange
}

/// A deliberately wrong behaviour, for showing that the simulator's checkers catch real bugs.
/// Test-only: production configurations leave `RaftConfiguration.plantedBug` nil.
public enum RaftPlantedBug: String, Sendable, CaseIterable {
    /// Grant votes without checking that the candidate's log is at least as up to date.
    case voteWithoutLogCheck = "vote-without-log-check"
    /// Commit by counting replicas even when the entry at that position is of an earlier term
    /// (the Raft paper's figure 8).
    case commitOldTermByCounting = "commit-old-term"
    /// Acknowledge (and count as the leader's own) what is written but not yet fdatasync'ed, in durable mode.
    case ackBeforePersist = "ack-before-persist"
    /// In replicated mode, vote and acknowledge at once after a power loss instead of rejoining non-voting.
    case rebootedMemberVotesAtOnce = "rebooted-votes"
}
