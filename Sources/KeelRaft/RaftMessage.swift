import KeelCore

/// A message between members' Raft cores. A plain value of fixed size: no bytes, no arrays, so sending
/// one allocates nothing. The runtime attaches the log bytes of an `appendEntries` range when it sends.
public struct RaftMessage: Hashable, Sendable, CustomStringConvertible {
    /// The sender's current term (for a pre-vote request: the term it would campaign in).
    public var term: Term
    /// What the message says.
    public var body: Body

    public init(term: Term, body: Body) {
        self.term = term
        self.body = body
    }

    /// The kinds of message.
    public enum Body: Hashable, Sendable {
        /// Leader → follower: the bytes [prevPosition, endPosition), all of one term.
        case appendEntries(AppendEntries)
        /// Follower → leader: the answer to an append, a snapshot, or a newly persisted position.
        case appendResponse(AppendResponse)
        /// Leader → follower: "I am still here", with the leader's commit position.
        case heartbeat(leaderCommit: LogPosition)
        /// Follower → leader: the answer to a heartbeat.
        case heartbeatResponse(appendedPosition: LogPosition)
        /// Candidate or pre-candidate → all: please vote for me.
        case voteRequest(VoteRequest)
        /// The answer to a vote request.
        case voteResponse(preVote: Bool, granted: Bool)
        /// Leader → transfer target: start an election now (leadership transfer).
        case timeoutNow
        /// Leader → a member rejoining after a power loss (boot `bootID`): it holds, persisted, everything
        /// up to `position`, which covers every entry committed before it rejoined — it may vote and
        /// acknowledge again.
        case caughtUp(position: LogPosition, bootID: UInt64)
    }

    public var description: String {
        switch body {
        case .appendEntries(let a):
            "append(\(term) prev \(a.prevPosition)/\(a.prevTerm) to \(a.endPosition) in \(a.entryTerm) commit \(a.leaderCommit))"
        case .appendResponse(let r):
            r.success
                ? "appendOK(\(term) appended \(r.appendedPosition) persisted \(r.persistedPosition)\(r.catchingUp ? " catching-up" : ""))"
                : "appendReject(\(term) hint \(r.hintPosition)/\(r.hintTerm) from \(r.hintTermStart))"
        case .heartbeat(let commit): "heartbeat(\(term) commit \(commit))"
        case .heartbeatResponse(let appended): "heartbeatResponse(\(term) appended \(appended))"
        case .voteRequest(let v):
            "\(v.preVote ? "preVote" : "vote")Request(\(term) last \(v.lastPosition)/\(v.lastTerm)\(v.transfer ? " transfer" : ""))"
        case .voteResponse(let preVote, let granted):
            "\(preVote ? "preVote" : "vote")\(granted ? "Granted" : "Refused")(\(term))"
        case .timeoutNow: "timeoutNow(\(term))"
        case .caughtUp(let position, let bootID): "caughtUp(\(term) at \(position) boot \(bootID))"
        }
    }
}

/// Leader → follower: append the bytes [prevPosition, endPosition), all of term `entryTerm`, after the
/// entry ending at `prevPosition` of term `prevTerm`. An append never spans a term boundary (the leader
/// splits there), which keeps the message a fixed-size value.
public struct AppendEntries: Hashable, Sendable {
    /// Where the range begins: the end of the entry that must match.
    public var prevPosition: LogPosition
    /// The term of the entry ending at `prevPosition` (the log's start term if it is the log start).
    public var prevTerm: Term
    /// Where the range ends (equal to `prevPosition`: a probe carrying no bytes).
    public var endPosition: LogPosition
    /// The term of every byte in the range.
    public var entryTerm: Term
    /// The leader's commit position.
    public var leaderCommit: LogPosition

    public init(prevPosition: LogPosition, prevTerm: Term, endPosition: LogPosition, entryTerm: Term, leaderCommit: LogPosition) {
        self.prevPosition = prevPosition
        self.prevTerm = prevTerm
        self.endPosition = endPosition
        self.entryTerm = entryTerm
        self.leaderCommit = leaderCommit
    }

    /// Bytes the runtime must attach.
    public var byteCount: Int64 { endPosition.bytes(since: prevPosition) }
}

/// Follower → leader.
public struct AppendResponse: Hashable, Sendable {
    /// True when the follower's log matches the leader's up to `appendedPosition`.
    public var success: Bool
    /// The end of the follower's log verified against this leader (written, maybe not yet durable).
    /// The leader paces its pipeline with it.
    public var appendedPosition: LogPosition
    /// The acknowledgement: verified and persisted (fdatasync'ed in durable mode, written in replicated
    /// mode). Only this counts towards commit, and not while `catchingUp`.
    public var persistedPosition: LogPosition
    /// The follower rejoined after a power loss and acknowledges nothing until caught up.
    public var catchingUp: Bool
    /// The follower's current boot, echoed in `caughtUp` so a late answer cannot release a later boot.
    public var bootID: UInt64
    /// On rejection: the `prevPosition` of the append rejected (lets the leader spot a stale rejection).
    public var rejectedPosition: LogPosition
    /// On rejection: the position the follower compared at (its end, if shorter than the leader's guess).
    public var hintPosition: LogPosition
    /// On rejection: the follower's term at `hintPosition`.
    public var hintTerm: Term
    /// On rejection: where that term begins in the follower's log, so the leader can back up a whole
    /// term per round trip.
    public var hintTermStart: LogPosition

    public init(
        success: Bool, appendedPosition: LogPosition, persistedPosition: LogPosition, catchingUp: Bool = false,
        bootID: UInt64 = 0, rejectedPosition: LogPosition = .zero, hintPosition: LogPosition = .zero, hintTerm: Term = .zero, hintTermStart: LogPosition = .zero
    ) {
        self.success = success
        self.appendedPosition = appendedPosition
        self.persistedPosition = persistedPosition
        self.catchingUp = catchingUp
        self.bootID = bootID
        self.rejectedPosition = rejectedPosition
        self.hintPosition = hintPosition
        self.hintTerm = hintTerm
        self.hintTermStart = hintTermStart
    }
}

/// Candidate → all.
public struct VoteRequest: Hashable, Sendable {
    /// A pre-vote: asks "would you vote for me?" without anyone changing term.
    public var preVote: Bool
    /// Sent on a leader's `timeoutNow`: voters set aside the lease that otherwise protects the leader.
    public var transfer: Bool
    /// The end of the candidate's log.
    public var lastPosition: LogPosition
    /// The term of the candidate's last entry.
    public var lastTerm: Term

    public init(preVote: Bool, transfer: Bool, lastPosition: LogPosition, lastTerm: Term) {
        self.preVote = preVote
        self.transfer = transfer
        self.lastPosition = lastPosition
        self.lastTerm = lastTerm
    }
}
