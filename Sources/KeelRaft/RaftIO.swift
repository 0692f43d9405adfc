import KeelCore

/// One input to `RaftCore.step`.
public enum RaftInput: Sendable {
    /// Time passed: the monotonic clock now reads `nowNanos`. Drives elections and heartbeats.
    case tick(nowNanos: Int64)
    /// A message arrived from another member.
    case message(from: MemberID, RaftMessage)
    /// The local log is persisted (fdatasync'ed in durable mode, written in replicated mode) up to
    /// `position`, whose last entry is of term `term`. A report that no longer matches the log (it was
    /// truncated and rewritten meanwhile) is ignored.
    case persisted(upTo: LogPosition, term: Term)
    /// Leader only: append a batch of `byteCount` bytes. Answered with an `append` action of kind
    /// `.proposal` naming its positions, or `proposalRefused`.
    case propose(byteCount: Int64)
    /// The runtime installed a snapshot covering the log up to `position` (whose last entry has term
    /// `term`), durably, if `position` is beyond the commit position. If the log held an entry ending at
    /// `position` of `term`, the runtime keeps the log after it and drops only what is before; otherwise
    /// it resets the log to begin, empty, at `position`.
    case snapshotInstalled(position: LogPosition, term: Term)
    /// The runtime took a snapshot at `position` (at most the commit position) and dropped the log before it.
    case logCompacted(upTo: LogPosition)
    /// Start a (pre-)vote round now, as if the election timer had fired (an operator's or a test's
    /// nudge). Ignored by a leader and by a member catching up after a power loss.
    case campaign
    /// Leader only: hand leadership to `member` once its log is up to date.
    case transferLeadership(to: MemberID)
}

/// One action for the runtime. Execute a step's actions in order; the order is the contract:
/// - `persistHardState` must be durable (fdatasync) before any later action is carried out;
/// - `truncate` / `append` change the local log; a later `send` of an append range needs those bytes
///   in the log (written, not necessarily durable); report durability back with `persisted(upTo:term:)`;
/// - `send` / `sendSnapshot` may go out as soon as the actions before them are done;
/// - `commitAdvanced` lets the service apply up to the position (entries written before it);
/// - `roleChanged` comes last in the step that changed the role.
public enum RaftAction: Sendable {
    /// Make (term, votedFor, votingBootID) durable.
    case persistHardState(RaftHardState)
    /// Remove the log from `position` on (never below the commit position).
    case truncate(from: LogPosition)
    /// Write the bytes [from, to) of term `term`; `kind` says where they come from.
    case append(from: LogPosition, to: LogPosition, term: Term, kind: RaftEntryKind)
    /// Send `message` to `member`, attaching the log bytes an `appendEntries` range names.
    case send(to: MemberID, RaftMessage)
    /// Send the newest snapshot to `member` (its next position is before this log's start).
    case sendSnapshot(to: MemberID)
    /// Entries up to `position` are committed and may be applied.
    case commitAdvanced(to: LogPosition)
    /// A proposal was refused (not the leader, or a transfer is under way); `leader` is a hint.
    case proposalRefused(byteCount: Int64, leader: MemberID?)
    /// The member's role, term or known leader changed.
    case roleChanged(role: RaftRole, term: Term, leader: MemberID?)
}

/// The reusable buffer `step` appends actions to. Create once, reserve capacity, and after executing the
/// actions call `removeAll()`, which keeps the storage: steps in steady state then allocate nothing.
public struct RaftOutput: Sendable {
    /// The actions, in the order they must be carried out.
    public private(set) var actions: [RaftAction]

    public init(capacity: Int = 256) {
        actions = []
        actions.reserveCapacity(capacity)
    }

    /// Forgets the actions, keeping the storage.
    public mutating func removeAll() { actions.removeAll(keepingCapacity: true) }

    /// True when there is nothing to do.
    public var isEmpty: Bool { actions.isEmpty }

    @inline(__always) mutating func append(_ action: RaftAction) { actions.append(action) }
}
