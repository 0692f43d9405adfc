import KeelCore
import KeelService

/// The timers as the replicated state holds them at the entry being applied: kept by the service
/// agent, changed only by applying entries, so equal on every replica at every log position.
///
/// It is the arbiter of a timer-event entry: the leader appends one when it sees a deadline pass,
/// but entries applied between that view and the event may have cancelled or rescheduled the
/// timer, and a new leader may append a second event for a timer the old one already fired. The
/// event fires only if the timer is still pending as the scheduling it names (its sequence) and its
/// deadline is not after the entry's timestamp — so a timer fires at most once, never early, never
/// after a cancel. The consensus agent's `ConsensusTimers` mirrors this set to decide when to fire.
public struct ReplicatedTimers: Sendable, Equatable {
    /// A pending timer's deadline and scheduling sequence.
    public struct Timer: Equatable, Sendable {
        public var deadline: ClusterTime
        public var sequence: Int64
    }

    /// Pending timers by correlation id.
    public private(set) var timers: [Int64: Timer] = [:]
    /// The sequence the next scheduling gets (replicated state too: it names schedulings in events).
    public private(set) var nextSequence: Int64 = 1

    public init() {}

    /// Timers pending.
    public var count: Int { timers.count }

    /// Schedules (or reschedules) `correlationId`; returns the scheduling's sequence.
    public mutating func schedule(correlationId: Int64, deadline: ClusterTime) -> Int64 {
        let sequence = nextSequence
        nextSequence += 1
        timers[correlationId] = Timer(deadline: deadline, sequence: sequence)
        return sequence
    }

    /// Cancels `correlationId`; returns whether it was pending.
    public mutating func cancel(correlationId: Int64) -> Bool {
        timers.removeValue(forKey: correlationId) != nil
    }

    /// Applies a timer event: true (and the timer is removed) if `correlationId` is pending as
    /// `sequence` with a deadline at or before `timestamp`; false for a stale or early event.
    public mutating func fire(correlationId: Int64, sequence: Int64, at timestamp: ClusterTime) -> Bool {
        guard let timer = timers[correlationId], timer.sequence == sequence, timer.deadline <= timestamp else { return false }
        timers.removeValue(forKey: correlationId)
        return true
    }

    /// An order-independent digest of the pending timers and the sequence counter.
    public func digest() -> StateDigest {
        var digest = StateDigest()
        digest.add(-1, nextSequence)
        for (id, timer) in timers { digest.add(id, timer.deadline.rawValue, timer.sequence) }
        return digest
    }

    /// Writes the timers for the consensus state snapshot: the sequence counter, the count, then
    /// (correlation id, deadline, sequence) per timer in schedule order (so the bytes do not depend
    /// on the dictionary's order).
    public func write(to writer: any SnapshotWriter) throws {
        try writer.write(nextSequence)
        try writer.write(Int64(timers.count))
        for (id, timer) in timers.sorted(by: { $0.value.sequence < $1.value.sequence }) {
            try writer.write(id)
            try writer.write(timer.deadline.rawValue)
            try writer.write(timer.sequence)
        }
    }

    /// Reads what `write(to:)` wrote, checking it is consistent.
    public static func read(from reader: any SnapshotReader) throws -> ReplicatedTimers {
        var restored = ReplicatedTimers()
        restored.nextSequence = try reader.readInt64()
        let count = try reader.readInt64()
        guard restored.nextSequence >= 1, count >= 0, count < restored.nextSequence else {
            throw SnapshotFormatError("timers: \(count) timers with next sequence \(restored.nextSequence)")
        }
        restored.timers.reserveCapacity(Int(count))
        for _ in 0..<count {
            let id = try reader.readInt64()
            let deadline = ClusterTime(rawValue: try reader.readInt64())
            let sequence = try reader.readInt64()
            guard sequence >= 1, sequence < restored.nextSequence, restored.timers[id] == nil else {
                throw SnapshotFormatError("timers: timer \(id) with sequence \(sequence) (next \(restored.nextSequence)) is invalid or repeated")
            }
            restored.timers[id] = Timer(deadline: deadline, sequence: sequence)
        }
        return restored
    }
}
