import KeelCore

/// The core's in-memory map from term to the position where it begins in the local log, restored from the
/// log on open. It answers "the term of the entry ending at position P" for the consistency check, the vote
/// check and the commit rule. The log may begin after position 0 (compaction): `startPosition` and
/// `startTerm` describe the entry just before the first byte held.
///
/// Position P names the boundary after byte P-1, so "term at P" is the term of byte P-1; at the log start
/// it is `startTerm`.
public struct TermIndex: Sendable, Equatable {
    /// A maximal run of bytes of one term: [start, next run's start or `endPosition`).
    public struct Run: Sendable, Equatable {
        public var term: Term
        public var start: LogPosition
        public init(term: Term, start: LogPosition) {
            self.term = term
            self.start = start
        }
    }

    /// The first position held (everything before is in a snapshot).
    public private(set) var startPosition: LogPosition
    /// The term of the last entry before `startPosition` (zero for an empty log at 0).
    public private(set) var startTerm: Term
    /// The end of the log: the position the next byte goes to.
    public private(set) var endPosition: LogPosition
    /// Runs in increasing order of start position and of term.
    public private(set) var runs: [Run]

    /// An empty log beginning at `startPosition`, after an entry of `startTerm`.
    public init(startPosition: LogPosition = .zero, startTerm: Term = .zero) {
        self.startPosition = startPosition
        self.startTerm = startTerm
        self.endPosition = startPosition
        self.runs = []
        runs.reserveCapacity(64)
    }

    /// The term of the last entry (the start term if the log holds nothing).
    public var lastTerm: Term { runs.last?.term ?? startTerm }

    /// The term of the entry ending at `position`, or nil outside [startPosition, endPosition].
    public func term(at position: LogPosition) -> Term? {
        guard position >= startPosition, position <= endPosition else { return nil }
        guard position > startPosition, let index = runIndex(containingByteBefore: position) else { return startTerm }
        return runs[index].term
    }

    /// Where the run holding the entry ending at `position` begins (the log start for the start position).
    public func termStart(at position: LogPosition) -> LogPosition {
        guard position > startPosition, let index = runIndex(containingByteBefore: position) else { return startPosition }
        return runs[index].start
    }

    /// The end of the bytes of `term` in this log, or nil if the log holds no byte of that term.
    public func end(ofTerm term: Term) -> LogPosition? {
        guard let index = runs.lastIndex(where: { $0.term == term }) else { return nil }
        return index + 1 < runs.count ? runs[index + 1].start : endPosition
    }

    /// The end of the run that begins at or contains `position` (where the next term begins, or the log end).
    public func runEnd(after position: LogPosition) -> LogPosition {
        var low = 0, high = runs.count
        while low < high {  // first run starting after `position`
            let middle = (low + high) / 2
            if runs[middle].start <= position { low = middle + 1 } else { high = middle }
        }
        return low < runs.count ? runs[low].start : endPosition
    }

    /// The greatest run start (or the log start) at or before `position`: always an entry boundary.
    public func boundary(atOrBefore position: LogPosition) -> LogPosition {
        var best = startPosition
        for run in runs where run.start <= position { best = max(best, run.start) }
        return best
    }

    /// Index of the run holding byte `position - 1`.
    private func runIndex(containingByteBefore position: LogPosition) -> Int? {
        var low = 0, high = runs.count
        while low < high {  // first run starting at or after `position`
            let middle = (low + high) / 2
            if runs[middle].start < position { low = middle + 1 } else { high = middle }
        }
        return low == 0 ? nil : low - 1
    }

    /// Records bytes [endPosition, end) of `term`.
    public mutating func append(term: Term, to end: LogPosition) {
        precondition(end >= endPosition, "append must extend the log")
        precondition(term >= lastTerm, "terms in a log never decrease")
        guard end > endPosition else { return }
        if runs.last?.term != term { runs.append(Run(term: term, start: endPosition)) }
        endPosition = end
    }

    /// Forgets everything from `position` on.
    public mutating func truncate(from position: LogPosition) {
        precondition(position >= startPosition && position <= endPosition, "truncation inside the log")
        while let last = runs.last, last.start >= position { runs.removeLast() }
        endPosition = position
    }

    /// Forgets everything before `position` (it is in a snapshot now).
    public mutating func compact(upTo position: LogPosition) {
        precondition(position >= startPosition && position <= endPosition, "compaction inside the log")
        let termThere = term(at: position)!
        var dropped = 0  // runs that end at or before `position`
        while dropped < runs.count {
            let runEnd = dropped + 1 < runs.count ? runs[dropped + 1].start : endPosition
            guard runEnd <= position else { break }
            dropped += 1
        }
        if dropped > 0 { runs.removeFirst(dropped) }
        if !runs.isEmpty, runs[0].start < position { runs[0].start = position }
        startPosition = position
        startTerm = termThere
    }

    /// Replaces the whole log by an empty one after a snapshot at (position, term).
    public mutating func reset(startPosition position: LogPosition, startTerm term: Term) {
        runs.removeAll(keepingCapacity: true)
        startPosition = position
        startTerm = term
        endPosition = position
    }
}
