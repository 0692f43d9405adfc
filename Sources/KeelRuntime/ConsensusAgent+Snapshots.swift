import KeelCore
import KeelLog
import KeelWire

/// What the leader knows about snapshot markers (DESIGN.md decision 11).
struct SnapshotMarkers {
    /// The end of the newest marker in the committed log (or of the snapshot the node restarted from).
    var lastCommittedEnd: LogPosition = .zero
    /// Leader: where the log ended when it last put a marker in the batch (nil: none since it led).
    var lastProposedAt: LogPosition?
    /// Leader: an admin asked for a snapshot; the marker goes into the next batch.
    var requested = false
}

// Snapshots, the consensus side: restoring the runtime's state from a recovered snapshot at start,
// and the leader's markers (on an admin request, or every `snapshotIntervalBytes` of log). Every
// member snapshots when its service agent applies a marker; this agent keeps replicating meanwhile.
extension ConsensusAgent {
    /// Restores the state a recovered snapshot holds (call before `onStart`): the entries below its
    /// position are known committed (the service agent replays from there), the session table and
    /// the timers are those at that position, and cluster time does not go back before it.
    public func restore(from state: ConsensusSnapshotState) {
        precondition(state.position <= log.appendedPosition, "a snapshot past the log's end cannot be replayed on from")
        core.restoreCommitPosition(state.position)
        restoreRuntimeState(from: state)
    }

    /// The runtime's part of a snapshot (sessions, timers, markers, cluster time, the published
    /// positions), replacing what it held: at start, and after installing one from the leader.
    func restoreRuntimeState(from state: ConsensusSnapshotState) {
        timers = ConsensusTimers()
        sessionState = ConsensusSessions()
        serviceCloseRequests.removeAll()
        var committed = SessionTable(limits: .none)
        for id in state.sessions.sortedIDs {
            let session = state.sessions[id]!
            committed.open(id: id, secret: session.secret, principal: session.principal, timestamp: session.openedAt)
        }
        sessionState.committed = committed
        control.committedSuspended = state.suspended
        for (id, timer) in state.timers.timers.sorted(by: { $0.value.sequence < $1.value.sequence }) {
            timers.schedule(correlationId: id, deadline: timer.deadline, sequence: timer.sequence)
        }
        timers.restoreSnapshot(appliedUpTo: state.position, nextSequence: state.timers.nextSequence)
        publishedCommit = state.position
        markers.lastCommittedEnd = state.position
        lastClusterTime = max(lastClusterTime, state.timestamp)
        shared.commitPosition.store(state.position.rawValue, ordering: .releasing)
        shared.appliedPosition.store(state.position.rawValue, ordering: .releasing)
        counters?.commitPosition.set(state.position.rawValue)
        event("restored runtime state of the snapshot at \(state.position.rawValue): \(state.sessions.sessions.count) sessions, \(state.timers.count) timers")
    }

    /// Leader: puts a snapshot marker in this cycle's batch when an admin asked for one or the log
    /// grew by the configured interval since the last marker.
    func proposeSnapshotMarker() {
        guard core.role == .leader else {
            markers.requested = false
            markers.lastProposedAt = nil
            return
        }
        let end = log.appendedPosition
        var due = markers.requested
        if let interval = configuration.snapshotIntervalBytes, interval > 0 {
            let since = max(markers.lastCommittedEnd, markers.lastProposedAt ?? .zero)
            due = due || end.bytes(since: since) >= interval
        }
        guard due, ingress.add(type: .snapshotMarker, sessionID: 0, correlationID: 0, payload: UnsafeRawBufferPointer(start: nil, count: 0)) else {
            return
        }
        markers.requested = false
        markers.lastProposedAt = end
    }

    /// Copies what the service agent published about snapshots into the node's counters (the
    /// counters have one writer each: this agent). Once a millisecond, with the tick.
    func publishSnapshotCounters() {
        guard let counters else { return }
        counters.snapshotsTaken.set(shared.snapshotsTaken.load(ordering: .relaxed))
        counters.snapshotsFailed.set(shared.snapshotsFailed.load(ordering: .relaxed))
        counters.snapshotsLoaded.set(shared.snapshotsLoaded.load(ordering: .relaxed))
        counters.snapshotsRejected.set(shared.snapshotsRejected.load(ordering: .relaxed))
        counters.snapshotPosition.set(shared.lastSnapshotPosition.load(ordering: .relaxed))
        counters.snapshotDurationNanos.set(shared.lastSnapshotDurationNanos.load(ordering: .relaxed))
        counters.snapshotLoadNanos.set(shared.snapshotLoadNanos.load(ordering: .relaxed))
        counters.replayNanos.set(shared.replayNanos.load(ordering: .relaxed))
    }

    /// A committed marker (seen while folding the committed log).
    func markerCommitted(endingAt end: LogPosition) {
        markers.lastCommittedEnd = max(markers.lastCommittedEnd, end)
    }

    /// An authorised take-snapshot request: the leader appends a marker; a follower says who leads.
    func requestSnapshot() -> (AdminStatus, String) {
        guard core.role == .leader else {
            return (.notLeader, "member \(configuration.selfID.rawValue) is not the leader (leader: \(core.leaderID.map { "\($0.rawValue)" } ?? "unknown"))")
        }
        markers.requested = true
        return (.ok, "snapshot marker requested at log position \(log.appendedPosition.rawValue); every member snapshots when it applies it")
    }
}
