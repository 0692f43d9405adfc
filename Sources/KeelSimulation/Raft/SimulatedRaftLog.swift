import KeelCore
import KeelRaft

/// One entry of the simulator's log model: positions and terms only, no bytes. `payload` names the
/// proposal (unique per simulation) and `digest` hashes the whole log up to and including this entry,
/// so equal digests at a position mean equal prefixes (what the log-matching and state-machine checkers
/// compare).
struct SimulatedEntry: Equatable, Sendable {
    var end: LogPosition
    var term: Term
    var payload: UInt64
    var digest: UInt64

    static func chain(_ previous: UInt64, end: LogPosition, term: Term, payload: UInt64) -> UInt64 {
        var hash = previous ^ 0x9E37_79B9_7F4A_7C15
        for word in [UInt64(bitPattern: end.rawValue), UInt64(bitPattern: term.rawValue), payload] {
            hash = (hash ^ word) &* 0x100_0000_01B3
            hash ^= hash >> 29
        }
        return hash
    }
}

/// A member's log in the simulator: what the page cache holds (`entries`), what the disk holds
/// (`durableEntries`, as of the last completed fdatasync), and the snapshot the log begins after.
struct SimulatedRaftLog: Sendable {
    var basePosition: LogPosition = .zero
    var baseTerm: Term = .zero
    var baseDigest: UInt64 = 0
    var entries: [SimulatedEntry] = []
    var durableEntries: [SimulatedEntry] = []

    var endPosition: LogPosition { entries.last?.end ?? basePosition }
    var lastDigest: UInt64 { entries.last?.digest ?? baseDigest }

    /// Index of the entry ending exactly at `position`.
    func index(endingAt position: LogPosition) -> Int? {
        var low = 0, high = entries.count
        while low < high {
            let middle = (low + high) / 2
            if entries[middle].end < position { low = middle + 1 } else { high = middle }
        }
        return low < entries.count && entries[low].end == position ? low : nil
    }

    /// The digest of the log up to `position`, if `position` is an entry boundary held here.
    func digest(at position: LogPosition) -> UInt64? {
        if position == basePosition { return baseDigest }
        return index(endingAt: position).map { entries[$0].digest }
    }

    func isBoundary(_ position: LogPosition) -> Bool { position == basePosition || index(endingAt: position) != nil }

    /// Entries in (from, to], for attaching to an append.
    func slice(from: LogPosition, to: LogPosition) -> ArraySlice<SimulatedEntry>? {
        guard isBoundary(from), isBoundary(to), from >= basePosition else { return nil }
        let first = from == basePosition ? 0 : index(endingAt: from)! + 1
        let last = to == basePosition ? -1 : index(endingAt: to)!
        return last < first ? entries[first..<first] : entries[first...last]
    }

    mutating func append(end: LogPosition, term: Term, payload: UInt64) -> SimulatedEntry {
        let entry = SimulatedEntry(end: end, term: term, payload: payload,
                                   digest: SimulatedEntry.chain(lastDigest, end: end, term: term, payload: payload))
        entries.append(entry)
        return entry
    }

    mutating func truncate(from position: LogPosition) {
        while let last = entries.last, last.end > position { entries.removeLast() }
    }

    mutating func compact(upTo position: LogPosition) {
        guard position > basePosition, let index = index(endingAt: position) else { return }
        baseTerm = entries[index].term
        baseDigest = entries[index].digest
        basePosition = position
        entries.removeFirst(index + 1)
    }

    mutating func installSnapshot(position: LogPosition, term: Term, digest: UInt64) {
        basePosition = position
        baseTerm = term
        baseDigest = digest
        entries.removeAll()
        durableEntries.removeAll()
    }

    /// What survives a power loss: the durable image, plus — when the page cache only extended it — a
    /// random prefix of the unsynced tail (sectors written before the loss; recovery cuts the rest).
    mutating func losePower(random: inout SeededRandom) {
        var survivors = durableEntries.filter { $0.end > basePosition }
        let extendsDurable = durableEntries.count <= entries.count
            && (durableEntries.isEmpty || entries[durableEntries.count - 1] == durableEntries.last!)
        if extendsDurable && entries.count > durableEntries.count {
            let kept = Int(random.integer(in: 0...Int64(entries.count - durableEntries.count)))
            survivors.append(contentsOf: entries[durableEntries.count..<durableEntries.count + kept].filter { $0.end > basePosition })
        }
        // The surviving entries must chain from the snapshot base; anything that does not is unusable.
        var chained: [SimulatedEntry] = []
        var digest = baseDigest
        for entry in survivors {
            guard SimulatedEntry.chain(digest, end: entry.end, term: entry.term, payload: entry.payload) == entry.digest else { break }
            chained.append(entry)
            digest = entry.digest
        }
        entries = chained
        durableEntries = chained
    }

    /// The core's term index for this log, as a runtime would rebuild it at open.
    func termIndex() -> TermIndex {
        var index = TermIndex(startPosition: basePosition, startTerm: baseTerm)
        for entry in entries { index.append(term: entry.term, to: entry.end) }
        return index
    }
}
