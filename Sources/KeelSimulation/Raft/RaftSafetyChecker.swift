import KeelCore
import KeelRaft

/// The invariants checked after every step of the Raft simulator, kept incrementally so each check is
/// cheap: election safety, leader append-only, log matching, leader completeness and state-machine safety.
struct RaftSafetyChecker: Sendable {
    private struct EntryKey: Hashable, Sendable {
        var end: Int64
        var term: Int64
    }

    /// term → the member that led it.
    private var leaders: [Int64: Int] = [:]
    /// (end, term) → prefix digest of every entry ever appended anywhere (log matching).
    private var entryDigests: [EntryKey: UInt64] = [:]
    /// end position → prefix digest of the committed history; the history ends at `committedEnd`.
    private var committedDigests: [Int64: UInt64] = [0: 0]
    private(set) var committedEnd: LogPosition = .zero
    /// term → the highest position a leader of that term committed.
    private var committedByTerm: [Int64: LogPosition] = [:]
    private(set) var committedCount = 0
    private(set) var violation: String?

    func committedDigest(at position: LogPosition) -> UInt64? { committedDigests[position.rawValue] }

    mutating func fail(_ message: String) {
        if violation == nil { violation = message }
    }

    /// Election safety: at most one leader per term, over the whole history.
    mutating func leaderElected(member: Int, term: Term) {
        if let previous = leaders[term.rawValue], previous != member {
            fail("election safety: m\(previous) and m\(member) both led term \(term.rawValue)")
        }
        leaders[term.rawValue] = member
    }

    /// Log matching: two entries with the same end and term have the same prefix.
    mutating func entryAppended(_ entry: SimulatedEntry, member: Int) {
        let key = EntryKey(end: entry.end.rawValue, term: entry.term.rawValue)
        if let digest = entryDigests[key] {
            if digest != entry.digest {
                fail("log matching: m\(member) holds an entry ending at \(entry.end) in \(entry.term) whose prefix differs from another member's")
            }
        } else {
            entryDigests[key] = entry.digest
        }
    }

    /// A leader of `term` committed up to `position`.
    mutating func leaderCommitted(upTo position: LogPosition, term: Term) {
        committedByTerm[term.rawValue] = max(committedByTerm[term.rawValue] ?? .zero, position)
    }

    /// Leader completeness (Raft §5.4): a leader of `term` holds every entry committed in earlier terms.
    /// (A leader of a stale term, elected with votes granted before a later term began, need not hold
    /// what the later term committed — and cannot commit anything over it.)
    mutating func checkLeaderCompleteness(_ log: SimulatedRaftLog, member: Int, term: Term) {
        var required = LogPosition.zero
        for (committedTerm, position) in committedByTerm where committedTerm < term.rawValue { required = max(required, position) }
        guard required > .zero, let expected = committedDigests[required.rawValue] else { return }
        guard log.basePosition <= required else { return }  // its snapshot was checked when installed
        if log.digest(at: required) != expected {
            fail("leader completeness: m\(member) leads \(term) without the entry ending at \(required) committed in an earlier term (its log ends at \(log.endPosition))")
        }
    }

    /// State-machine safety: what a member applies up to `position` (prefix digest `digest`) must be a
    /// prefix of the one committed history; new committed entries extend it.
    mutating func applied(upTo position: LogPosition, log: SimulatedRaftLog, member: Int) {
        guard let digest = log.digest(at: position) else {
            fail("m\(member) committed up to \(position), which is not an entry boundary of its log")
            return
        }
        if let expected = committedDigests[position.rawValue] {
            if expected != digest { fail("state-machine safety: m\(member) applied a different history up to \(position)") }
            return
        }
        guard position > committedEnd else {
            fail("state-machine safety: m\(member) committed up to \(position), not a boundary of the committed history")
            return
        }
        // The member's log must contain the history so far, then extends it.
        if committedEnd >= log.basePosition {
            guard log.digest(at: committedEnd) == committedDigests[committedEnd.rawValue] else {
                fail("state-machine safety: m\(member) committed past \(committedEnd) on a log that disagrees with the committed history")
                return
            }
            let from = committedEnd == log.basePosition ? 0 : log.index(endingAt: committedEnd)! + 1
            for entry in log.entries[from...] where entry.end <= position {
                committedDigests[entry.end.rawValue] = entry.digest
                committedCount += 1
            }
        } else {
            committedDigests[position.rawValue] = digest
            committedCount += 1
        }
        committedEnd = position
    }

    /// A snapshot names a committed prefix: it must agree with the history.
    mutating func snapshotInstalled(position: LogPosition, digest: UInt64, member: Int) {
        guard let expected = committedDigests[position.rawValue] else {
            fail("m\(member) installed a snapshot at \(position), which is not a committed boundary")
            return
        }
        if expected != digest { fail("state-machine safety: m\(member) installed a snapshot disagreeing with the committed history at \(position)") }
    }
}
