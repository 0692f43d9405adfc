import KeelCore

/// The consensus agent's copy of the pending timers (issue 8 §3): it learns the replicated timer
/// set from the service agent's requests (in log order), and on the leader decides when a deadline
/// has passed and a timer-event entry must be appended. Every member keeps it, so a new leader
/// fires what the old one had not.
///
/// A timer the leader fired is "in flight" from the moment its event joins a batch until the
/// service reports it applied past the batch: then either the service fired it (`timerFired`), or a
/// later request cancelled or rescheduled it, or — if neither — the event was lost with a truncated
/// suffix and the timer is armed again. On becoming leader the in-flight timers are re-armed and the
/// unapplied part of the log is scanned for events already appended, so they are not fired twice
/// (a second event would be harmless anyway: `ReplicatedTimers` ignores it when applied).
struct ConsensusTimers {
    struct InFlight {
        var sequence: Int64
        var deadline: ClusterTime
    }

    private(set) var pending: TimerHeap
    private(set) var inFlight: [Int64: InFlight] = [:]
    /// In-flight events in the order appended: (id, sequence, the end of the batch holding the event).
    private var toResolve: [(id: Int64, sequence: Int64, batchEnd: LogPosition)] = []
    private var resolvedCount = 0
    /// Fired into the current ingress batch, not yet appended.
    private var unplaced: [PendingTimer] = []
    /// The service applied everything below this (as far as its requests have been read).
    private(set) var serviceApplied: LogPosition = .zero
    private var highestSequence: Int64 = 0

    init(capacity: Int = 1024) {
        pending = TimerHeap(capacity: capacity)
        unplaced.reserveCapacity(1024)
    }

    /// Restarting from a snapshot at `position`: the service applied everything below it, and every
    /// scheduling up to `nextSequence` − 1 is accounted for (pending ones were scheduled here), so
    /// older timer events in the log are stale, not in flight.
    mutating func restoreSnapshot(appliedUpTo position: LogPosition, nextSequence: Int64) {
        serviceApplied = max(serviceApplied, position)
        highestSequence = max(highestSequence, nextSequence - 1)
    }

    /// Timers the leader would fire (pending, not in flight).
    var pendingCount: Int { pending.count }
    var inFlightCount: Int { inFlight.count }

    mutating func schedule(correlationId: Int64, deadline: ClusterTime, sequence: Int64) {
        highestSequence = max(highestSequence, sequence)
        pending.cancel(correlationId: correlationId)
        if inFlight[correlationId]?.sequence == sequence {
            inFlight[correlationId]?.deadline = deadline  // its event is already in the log
            return
        }
        inFlight.removeValue(forKey: correlationId)
        pending.schedule(PendingTimer(correlationId: correlationId, deadline: deadline, sequence: sequence))
    }

    mutating func cancel(correlationId: Int64) {
        pending.cancel(correlationId: correlationId)
        inFlight.removeValue(forKey: correlationId)
    }

    mutating func fired(correlationId: Int64, sequence: Int64) {
        if inFlight[correlationId]?.sequence == sequence { inFlight.removeValue(forKey: correlationId) }
        if pending.timer(correlationId: correlationId)?.sequence == sequence { pending.cancel(correlationId: correlationId) }
    }

    /// The service applied everything below `position`: in-flight events in batches ending there or
    /// before that did not fire (and were not superseded) were lost, so their timers are armed again.
    mutating func serviceApplied(upTo position: LogPosition) {
        serviceApplied = max(serviceApplied, position)
        while resolvedCount < toResolve.count && toResolve[resolvedCount].batchEnd <= position {
            let entry = toResolve[resolvedCount]
            resolvedCount += 1
            rearmIfStillInFlight(entry.id, entry.sequence)
        }
        if resolvedCount > 4096 && resolvedCount * 2 > toResolve.count {
            toResolve.removeFirst(resolvedCount)
            resolvedCount = 0
        }
    }

    /// Leader: moves timers due at `now` into the batch being gathered (at most `limit`), calling
    /// `add` for each; `add` returns false when the batch is full (the timer stays pending).
    mutating func fireDue(now: ClusterTime, limit: Int, _ add: (PendingTimer) -> Bool) -> Int {
        var fired = 0
        while fired < limit, let timer = pending.earliest, timer.deadline <= now {
            guard add(timer) else { break }
            _ = pending.popDue(now: now)
            unplaced.append(timer)
            fired += 1
        }
        return fired
    }

    /// The batch holding the fired timers was appended, ending at `batchEnd`.
    mutating func batchAppended(endingAt batchEnd: LogPosition) {
        for timer in unplaced { markInFlight(timer, batchEnd: batchEnd) }
        unplaced.removeAll(keepingCapacity: true)
    }

    /// The batch was dropped (leadership lost, or the proposal refused): its timers are pending again.
    mutating func batchDropped() {
        for timer in unplaced { pending.schedule(timer) }
        unplaced.removeAll(keepingCapacity: true)
    }

    /// Becoming leader: every in-flight timer is armed again, then `events` — the timer-event entries
    /// in the local log the service has not applied yet, as (timer, entry end) — are in flight.
    mutating func becameLeader(unappliedEvents events: [(timer: PendingTimer, end: LogPosition)]) {
        batchDropped()
        for (id, flight) in inFlight {
            rearm(PendingTimer(correlationId: id, deadline: flight.deadline, sequence: flight.sequence))
        }
        inFlight.removeAll()
        toResolve.removeAll()
        resolvedCount = 0
        for (timer, end) in events { noteAppendedEvent(timer, end: end) }
    }

    private mutating func noteAppendedEvent(_ timer: PendingTimer, end: LogPosition) {
        if let current = pending.timer(correlationId: timer.correlationId) {
            guard current.sequence <= timer.sequence else { return }  // superseded: a stale event
            pending.cancel(correlationId: timer.correlationId)
        } else if timer.sequence <= highestSequence {
            return  // fired, cancelled or superseded already
        }
        // Pending as this scheduling, or scheduled by an entry the service has not applied yet.
        markInFlight(timer, batchEnd: end)
    }

    private mutating func markInFlight(_ timer: PendingTimer, batchEnd: LogPosition) {
        inFlight[timer.correlationId] = InFlight(sequence: timer.sequence, deadline: timer.deadline)
        toResolve.append((timer.correlationId, timer.sequence, batchEnd))
    }

    private mutating func rearmIfStillInFlight(_ id: Int64, _ sequence: Int64) {
        guard let flight = inFlight[id], flight.sequence == sequence else { return }
        inFlight.removeValue(forKey: id)
        rearm(PendingTimer(correlationId: id, deadline: flight.deadline, sequence: sequence))
    }

    private mutating func rearm(_ timer: PendingTimer) {
        if let current = pending.timer(correlationId: timer.correlationId), current.sequence > timer.sequence { return }
        pending.schedule(timer)
    }
}
