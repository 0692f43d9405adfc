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

    /// Leader completeness: a new leader holds every entry committed so far.
    mutating func checkLeaderCompleteness(_ log: SimulatedRaftLog, member: Int, term: Term) {
        guard let expected = committedDigests[committedEnd.rawValue] else { return }
        guard log.basePosition <= committedEnd else { return }  // its snapshot is checked when applied
        if log.digest(at: committedEnd) != expected {
            fail("leader completeness: m\(member) leads \(term) without the committed entry ending at \(committedEnd) (its log ends at \(log.endPosition))")
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
