import KeelCore
import KeelLog
import KeelService

// Sequenced timers and service-requested closes (issue 8 §3): every member learns the replicated
// timer set from its service agent's requests; the leader appends a timer-event entry for each
// timer whose deadline cluster time has reached — each duty cycle, so timers fire on an idle
// cluster too.
extension ConsensusAgent {
    /// Timers the leader fires per duty cycle at most (the rest wait for the next cycle).
    static var timersFiredPerCycleMax: Int { 4096 }

    /// Reads what the service agent computed while applying entries, in order.
    func drainServiceRequests() -> Int {
        var work = 0
        while let request = shared.serviceRequests.poll() {
            work += 1
            switch request {
            case .scheduleTimer(let id, let deadline, let sequence):
                timers.schedule(correlationId: id, deadline: deadline, sequence: sequence)
            case .cancelTimer(let id):
                timers.cancel(correlationId: id)
            case .timerFired(let id, let sequence):
                timers.fired(correlationId: id, sequence: sequence)
            case .closeSession(let id):
                if !serviceCloseRequests.contains(where: { $0.sessionID == id }) { serviceCloseRequests.append((id, false)) }
            case .sessionClosed(let id):
                serviceCloseRequests.removeAll { $0.sessionID == id }
            case .applied(let position):
                timers.serviceApplied(upTo: position)
                work -= 1  // progress alone is not work
            }
        }
        return work
    }

    /// Leader: adds a timer-event entry to this cycle's batch for every timer due at
    /// max(last cluster time, epoch clock), and a close entry for every session the service asked
    /// to close. The batch is stamped no earlier than that time, so no timer fires early.
    func fireDueTimers() -> Int {
        guard core.role == .leader else { return 0 }
        if needsLeaderTimerScan {
            needsLeaderTimerScan = false
            timers.becameLeader(unappliedEvents: unappliedTimerEvents())
        }
        var work = appendServiceCloses()
        guard let earliest = timers.pending.earliest else { return work }
        let now = max(lastClusterTime, ClusterTime(nanosSinceEpoch: clock.epochNanos()))
        guard earliest.deadline <= now else { return work }
        lastClusterTime = now
        var payload: (Int64, Int64) = (0, 0)
        work += withUnsafeMutableBytes(of: &payload) { buffer in
            timers.fireDue(now: now, limit: Self.timersFiredPerCycleMax) { timer in
                TimerEventPayload.encode(sequence: timer.sequence, deadline: timer.deadline, into: buffer)
                return ingress.add(type: .timerEvent, sessionID: 0, correlationID: timer.correlationId, payload: UnsafeRawBufferPointer(buffer))
            }
        }
        return work
    }

    /// The timer events in the local log that the service has not applied yet (a new leader must not
    /// fire them again).
    func unappliedTimerEvents() -> [(timer: PendingTimer, end: LogPosition)] {
        var events: [(timer: PendingTimer, end: LogPosition)] = []
        let from = max(timers.serviceApplied, log.startPosition)
        log.reader.forEachFrame(from: from, limit: log.appendedPosition) { frame in
            if frame.type == .timerEvent, let event = TimerEventPayload.decode(frame.payload) {
                events.append((PendingTimer(correlationId: frame.correlationID, deadline: event.deadline, sequence: event.sequence), frame.endPosition))
            }
            return true
        }
        return events
    }

    /// Close entries for the sessions the service asked to close, in the order it asked (the same
    /// on every member), so the log a leader builds does not depend on hash order.
    private func appendServiceCloses() -> Int {
        var work = 0
        for index in serviceCloseRequests.indices where !serviceCloseRequests[index].appended {
            let id = serviceCloseRequests[index].sessionID
            // One close entry per session, whoever asks (a timeout or the client may have appended it).
            guard !sessionState.closing.contains(id) else {
                serviceCloseRequests[index].appended = true
                continue
            }
            let reason = Int64(CloseReason.closedByService.rawValue)
            guard ingress.add(type: .sessionClose, sessionID: id, correlationID: reason, payload: UnsafeRawBufferPointer(start: nil, count: 0)) else { break }
            sessionState.closing.insert(id)
            serviceCloseRequests[index].appended = true
            work += 1
        }
        return work
    }
}
