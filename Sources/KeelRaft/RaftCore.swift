import KeelCore

/// The Raft protocol as a pure state machine (DESIGN.md decision 5). It decides terms, votes,
/// replication and commit; it reads no clock, does no I/O, starts no thread and draws randomness only
/// from the seeded generator it is given. The runtime feeds it `RaftInput`s and carries out the
/// `RaftAction`s it appends to a reusable `RaftOutput`, in order (see `RaftAction` for the contract).
///
/// The log is a byte stream addressed by `LogPosition`; the core knows only positions and terms (its
/// `TermIndex`), never bytes. Steps in steady state allocate nothing.
public struct RaftCore: Sendable {
    /// The fixed settings.
    public let configuration: RaftConfiguration
    /// Term, vote and voting boot; persisted through `persistHardState` before use.
    public internal(set) var hardState: RaftHardState
    /// The current role.
    public internal(set) var role: RaftRole = .follower
    /// The leader of the current term, if known.
    public internal(set) var leaderID: MemberID?
    /// Term boundaries of the local log.
    public internal(set) var termIndex: TermIndex
    /// Everything before this position is committed.
    public internal(set) var commitPosition: LogPosition
    /// The local log is persisted up to here (fdatasync'ed in durable mode, written in replicated mode).
    public internal(set) var persistedPosition: LogPosition
    /// True while this member rejoins after a power loss in replicated mode: it neither votes, nor
    /// campaigns, nor acknowledges until a current leader has caught it up.
    public internal(set) var catchingUp: Bool
    /// Elections this member started (real ones, not pre-votes).
    public internal(set) var electionsStarted = 0
    /// Appends refused because they would have truncated committed entries (never happens unless safety
    /// is already broken elsewhere; the simulator treats a non-zero count as a violation).
    public internal(set) var refusedUnsafeTruncations = 0

    let bootID: UInt64
    var random: SeededRandom
    var nowNanos: Int64
    let selfSlot: Int
    var hardStateDirty = false
    var electionDeadlineNanos: Int64 = 0
    var lastLeaderContactNanos: Int64 = .min
    var checkQuorumDeadlineNanos: Int64 = 0
    var votesGranted: UInt64 = 0
    var votesRefused: UInt64 = 0
    var progress: [ReplicationProgress]
    /// Follower: the local log is known to match the current leader's up to here.
    var leaderMatchPosition: LogPosition = .zero
    /// Follower: the acknowledgement last sent to the leader.
    var lastAckSent: LogPosition = .zero
    var transferTarget: MemberID?
    var transferDeadlineNanos: Int64 = 0

    /// Opens the core over a log already on disk.
    /// - Parameters:
    ///   - hardState: as last persisted (for a brand-new member: term 0, no vote, `votingBootID: bootID`).
    ///   - termIndex: restored from the log (its start is the newest snapshot's position and term).
    ///   - persistedPosition: how much of that log is durable now (usually its end, after a sync at open).
    ///   - bootID: the current boot; differs from `hardState.votingBootID` after a power loss.
    ///   - random: the seeded generator for election timeouts.
    ///   - nowNanos: the monotonic clock at open.
    public init(
        configuration: RaftConfiguration, hardState: RaftHardState, termIndex: TermIndex,
        persistedPosition: LogPosition, bootID: UInt64, random: SeededRandom, nowNanos: Int64
    ) {
        self.configuration = configuration
        self.hardState = hardState
        self.termIndex = termIndex
        self.commitPosition = termIndex.startPosition
        self.persistedPosition = min(max(persistedPosition, termIndex.startPosition), termIndex.endPosition)
        self.bootID = bootID
        self.random = random
        self.nowNanos = nowNanos
        self.selfSlot = configuration.members.firstIndex(of: configuration.selfID)!
        let forgotten = hardState.votingBootID == RaftHardState.forgottenBootID
        self.catchingUp = (configuration.durability == .replicated || forgotten) && hardState.votingBootID != bootID
            && configuration.plantedBug != .rebootedMemberVotesAtOnce
        self.progress = Array(repeating: ReplicationProgress(nextPosition: termIndex.endPosition), count: configuration.members.count)
        resetElectionTimer()
    }

    /// Feeds one input and appends the resulting actions to `output`, in the order they must be done.
    public mutating func step(_ input: RaftInput, into output: inout RaftOutput) {
        let before = (role, hardState.term, leaderID)
        switch input {
        case .tick(let now):
            nowNanos = max(nowNanos, now)
            tick(into: &output)
        case .message(let from, let message):
            receive(message, from: from, into: &output)
        case .persisted(let position, let term):
            persisted(upTo: position, term: term, into: &output)
        case .propose(let byteCount):
            propose(byteCount: byteCount, into: &output)
        case .snapshotInstalled(let position, let term):
            snapshotInstalled(position: position, term: term, into: &output)
        case .logCompacted(let position):
            precondition(position <= commitPosition, "only committed entries can be compacted")
            if position > termIndex.startPosition { termIndex.compact(upTo: position) }
        case .campaign:
            if role != .leader && !catchingUp { campaign(preVote: configuration.preVote, transfer: false, into: &output) }
        case .transferLeadership(let target):
            transferLeadership(to: target, into: &output)
        }
        flushHardState(into: &output)
        if before != (role, hardState.term, leaderID) {
            output.append(.roleChanged(role: role, term: hardState.term, leader: leaderID))
        }
    }

    /// The current term.
    public var term: Term { hardState.term }

    /// The end of the local log.
    public var endPosition: LogPosition { termIndex.endPosition }

    // MARK: - Shared helpers

    /// Time since `instant`; `Int64.min` means "never", which is longer ago than any timeout.
    func nanosSince(_ instant: Int64) -> Int64 { instant == .min ? .max : nowNanos &- instant }

    func slot(of member: MemberID) -> Int? { configuration.members.firstIndex(of: member) }

    mutating func resetElectionTimer() {
        let timeout = random.integer(in: configuration.electionTimeoutMinNanos...configuration.electionTimeoutMaxNanos)
        electionDeadlineNanos = nowNanos &+ timeout
    }

    /// Emits a pending hard-state change first, so that it is durable before whatever follows.
    mutating func emit(_ action: RaftAction, into output: inout RaftOutput) {
        flushHardState(into: &output)
        output.append(action)
    }

    mutating func send(_ body: RaftMessage.Body, to member: MemberID, term: Term? = nil, into output: inout RaftOutput) {
        emit(.send(to: member, RaftMessage(term: term ?? hardState.term, body: body)), into: &output)
    }

    mutating func flushHardState(into output: inout RaftOutput) {
        guard hardStateDirty else { return }
        hardStateDirty = false
        output.append(.persistHardState(hardState))
    }

    mutating func advanceCommit(to position: LogPosition, into output: inout RaftOutput) {
        guard position > commitPosition else { return }
        precondition(position <= termIndex.endPosition, "commit beyond the local log")
        commitPosition = position
        emit(.commitAdvanced(to: position), into: &output)
    }

    /// What this member acknowledges as its own: persisted, or merely written under the planted bug.
    var selfAcknowledgedPosition: LogPosition {
        configuration.plantedBug == .ackBeforePersist ? termIndex.endPosition : persistedPosition
    }

    // MARK: - Time

    mutating func tick(into output: inout RaftOutput) {
        if role == .leader {
            leaderTick(into: &output)
            return
        }
        guard nowNanos >= electionDeadlineNanos else { return }
        if catchingUp {
            // A member that may have lost acknowledged writes must not lead or vote (decision 7).
            resetElectionTimer()
            return
        }
        campaign(preVote: configuration.preVote, transfer: false, into: &output)
    }

    // MARK: - Local log events

    mutating func persisted(upTo position: LogPosition, term: Term, into output: inout RaftOutput) {
        // A report about bytes since truncated and rewritten no longer describes the log: ignore it.
        guard position > persistedPosition, termIndex.term(at: position) == term else { return }
        persistedPosition = position
        if role == .leader {
            maybeCommit(into: &output)
        } else {
            sendAcknowledgementIfAdvanced(into: &output)
        }
    }

    /// A restarting member recovered a snapshot taken at `position` from its own applied, hence
    /// committed, entries, and its log still holds every entry up to there: those entries are known
    /// committed before any leader says so (the service replays from there). Call before the first
    /// step. Unlike `snapshotInstalled`, the log before `position` is kept (compaction drops it later).
    public mutating func restoreCommitPosition(_ position: LogPosition) {
        precondition(position <= termIndex.endPosition, "a snapshot the log cannot continue from (past its end)")
        commitPosition = max(commitPosition, position)
    }

    /// Whether the runtime should install a snapshot ending at `position` that arrived from a leader:
    /// only beyond the commit position, and never on a leader (whose log is append-only).
    public func shouldInstallSnapshot(position: LogPosition) -> Bool {
        role != .leader && position > commitPosition
    }

    mutating func snapshotInstalled(position: LogPosition, term: Term, into output: inout RaftOutput) {
        precondition(role != .leader, "a leader's log is append-only: check shouldInstallSnapshot first")
        guard position > commitPosition else { return }
        // The snapshot's last entry exists, so its term does: never hold entries of a term above ours.
        if term > hardState.term { becomeFollower(term: term, leader: nil) }
        if termIndex.term(at: position) == term {
            // The log already holds the snapshot's last entry: keep what follows (it may hold
            // acknowledged entries), drop only what the snapshot covers.
            if position > termIndex.startPosition { termIndex.compact(upTo: position) }
            persistedPosition = max(persistedPosition, position)
        } else {
            termIndex.reset(startPosition: position, startTerm: term)
            persistedPosition = position
        }
        commitPosition = position
        leaderMatchPosition = max(leaderMatchPosition, position)
        if role == .leader { return }
        if let leader = leaderID {
            let response = AppendResponse(
                success: true, appendedPosition: position, persistedPosition: acknowledgement, catchingUp: catchingUp,
                bootID: bootID)
            send(.appendResponse(response), to: leader, into: &output)
            lastAckSent = acknowledgement
        }
    }
}
