import KeelCore

/// Which term wrote which part of the log: the start position of every term present, in order.
///
/// Derived from the frames (each carries its term), so it is exactly as durable as they are; it is
/// rebuilt by the recovery scan on every open and kept in step by append, truncate and log-start moves.
public struct LogTermIndex: Sendable, Equatable {
    /// (term, position of its first frame), terms strictly increasing.
    public private(set) var entries: [(term: Term, start: LogPosition)] = []
    /// The log's start position and the term of the entry just before it.
    public private(set) var logStart: LogPosition
    public private(set) var logStartTerm: Term

    init(logStart: LogPosition, logStartTerm: Term) {
        self.logStart = logStart
        self.logStartTerm = logStartTerm
        entries.reserveCapacity(64)
    }

    public static func == (lhs: LogTermIndex, rhs: LogTermIndex) -> Bool {
        lhs.logStart == rhs.logStart && lhs.logStartTerm == rhs.logStartTerm
            && lhs.entries.count == rhs.entries.count
            && zip(lhs.entries, rhs.entries).allSatisfy { $0.term == $1.term && $0.start == $1.start }
    }

    /// The term of the last frame, or the log-start term when the log holds none.
    public var lastTerm: Term { entries.last?.term ?? logStartTerm }

    /// Notes a frame of `term` starting at `position` (frames arrive in position order).
    mutating func noteFrame(term: Term, at position: LogPosition) {
        precondition(term >= lastTerm, "terms never go backwards in the log")
        if entries.isEmpty || term > entries[entries.count - 1].term { entries.append((term, position)) }
    }

    /// The term of the frame containing `position` (nil before the log start or at/after `end`).
    public func term(at position: LogPosition, end: LogPosition) -> Term? {
        guard position >= logStart, position < end else { return nil }
        var result: Term?
        for entry in entries.reversed() where entry.start <= position { result = entry.term; break }
        return result
    }

    /// The term of the frame that ends at `position` (Raft's prevTerm for prevPosition): the
    /// log-start term at the log start, nil outside [start, end].
    public func term(before position: LogPosition, end: LogPosition) -> Term? {
        guard position >= logStart, position <= end else { return nil }
        if position == logStart { return logStartTerm }
        return term(at: position.advanced(by: -1), end: end)
    }

    /// Where term `term` starts in the log, if any frame of it is present.
    public func start(of term: Term) -> LogPosition? {
        entries.first(where: { $0.term == term })?.start
    }

    /// Forgets every term start at or after `position` (truncation).
    mutating func truncate(from position: LogPosition) {
        while let last = entries.last, last.start >= position { entries.removeLast() }
    }

    /// Moves the log start forward to `position`, whose preceding frame has term `term`.
    mutating func moveStart(to position: LogPosition, term: Term) {
        logStart = position
        logStartTerm = term
        // Keep the entry covering `position`; drop the ones wholly before it.
        while entries.count >= 2 && entries[1].start <= position { entries.removeFirst() }
        if let first = entries.first, first.start < position { entries[0].start = position }
    }

    /// Starts over from an empty log at `position` (snapshot install on a follower).
    mutating func reset(logStart position: LogPosition, term: Term) {
        entries.removeAll(keepingCapacity: true)
        logStart = position
        logStartTerm = term
    }
}
