import KeelCore
import KeelLog
import KeelRaft
import KeelWire

/// The consensus agent's side of the cluster-wide commands (issue 10 §3): suspend / resume and
/// shutdown travel as `.clusterAction` log entries; a leadership transfer is the core's.
struct ClusterControlState {
    /// The suspended state as of the published commit (the committed fold; restored from snapshots).
    var committedSuspended = false
    /// Leader: suspended as of the log's end, counting the actions it put in the log itself.
    var suspendedAtEnd = false
    /// Leader: a shutdown entry is in the log after `logEndAtStart` (nothing more is appended).
    var shuttingDown = false
    /// Leader: the shutdown entry is in the batch, or appended (later batches are then dropped).
    var shutdownInBatch = false
    var shutdownInLog = false
    /// The log's end when the agent started: a shutdown entry before it is history.
    var logEndAtStart: LogPosition = .zero
    /// Leader: admin requests answered once their entry commits (end nil: still in the batch).
    var pendingAnswers: [(connection: PeerConnection, correlationID: Int64, type: AdminRequestType, end: LogPosition?)] = []
    /// Leader: the transfer an admin asked for, answered if the core gives it up.
    var transfer: (connection: PeerConnection, correlationID: Int64, target: MemberID, startNanos: Int64)?
    /// After the service applied a shutdown: when this member started waiting for its followers, and
    /// when they had all acknowledged it.
    var shutdownWaitStartNanos: Int64?
    var followersAcknowledgedNanos: Int64?

    /// How long a shutting-down leader waits for followers to hold the shutdown entry.
    static let shutdownWaitNanos: Int64 = 10_000_000_000
}

extension ConsensusAgent {
    /// True when the leader takes no new client requests (suspended, or shutting down).
    var refusesRequests: Bool { control.suspendedAtEnd || control.shuttingDown }

    /// Answers a request refused at ingress (never logged): retry it, same sequence, later.
    func refuseRequest(_ frame: RequestFrame, on connection: PeerConnection) {
        let reason: RequestRejection = control.shuttingDown ? .shuttingDown : .clusterSuspended
        let detail = Array("request \(frame.sequence) of session \(frame.sessionID): \(reason)".utf8)
        let length = detail.withUnsafeBytes {
            RequestRejectedFrame.encode(
                into: scratch, sessionID: frame.sessionID, sequence: frame.sequence, expectedSequence: frame.sequence, reason: reason, detail: $0)
        }
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }

    /// An authorised suspend, resume, shutdown or transfer-leadership request. Returns the answer,
    /// or nil when it comes later (once the entry commits, or when a transfer is given up).
    func controlRequest(_ frame: AdminRequestFrame, on connection: PeerConnection) -> (AdminStatus, String)? {
        guard core.role == .leader else {
            return (.notLeader, "member \(configuration.selfID.rawValue) is not the leader (leader: \(core.leaderID.map { "\($0.rawValue)" } ?? "unknown"))")
        }
        guard !control.shuttingDown else { return (.failed, "the cluster is shutting down") }
        if frame.requestType == .transferLeadership { return startTransfer(frame, on: connection) }
        let action: ClusterAction = switch frame.requestType {
        case .suspend: .suspend
        case .resume: .resume
        default: .shutdown
        }
        if action != .shutdown && control.suspendedAtEnd == (action == .suspend) && control.pendingAnswers.isEmpty {
            return (.ok, "the cluster is already \(action == .suspend ? "suspended" : "serving") (log position \(log.appendedPosition.rawValue))")
        }
        guard appendClusterAction(action) else { return (.failed, "the ingress batch is full; try again") }
        control.pendingAnswers.append((connection, frame.correlationID, frame.requestType, nil))
        return nil
    }

    /// Leader: puts a cluster-action entry in this cycle's batch (as an admin's suspend, resume or
    /// shutdown does, with no one to answer); false when this member does not lead, is shutting
    /// down, or the batch is full. Call on the agent's thread.
    @discardableResult
    public func appendClusterAction(_ action: ClusterAction) -> Bool {
        guard core.role == .leader, !control.shuttingDown,
              ingress.add(type: .clusterAction, sessionID: 0, correlationID: action.rawValue, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        else { return false }
        switch action {
        case .suspend: control.suspendedAtEnd = true
        case .resume: control.suspendedAtEnd = false
        case .shutdown:
            control.shuttingDown = true
            control.shutdownInBatch = true
        }
        event("\(action) appended")
        return true
    }

    private func startTransfer(_ frame: AdminRequestFrame, on connection: PeerConnection) -> (AdminStatus, String)? {
        guard frame.body.count == 4 else { return (.failed, "the body must be a 4-byte member id, not \(frame.body.count) bytes") }
        let target = MemberID(frame.body.loadUnaligned(as: Int32.self).littleEndian)
        guard configuration.members.contains(where: { $0.id == target }) else {
            return (.failed, "member \(target.rawValue) is not in the cluster (\(configuration.members.map { "\($0.id.rawValue)" }.joined(separator: ",")))")
        }
        if target == configuration.selfID { return (.ok, "member \(target.rawValue) already leads (term \(core.term.rawValue))") }
        if let pending = control.transfer { return (.failed, "a transfer to member \(pending.target.rawValue) is under way") }
        try? step(.transferLeadership(to: target))
        guard core.leadershipTransferTarget == target else { return (.failed, "the core did not start the transfer to \(target.rawValue)") }
        control.transfer = (connection, frame.correlationID, target, nowNanos)
        event("admin: leadership transfer to member \(target.rawValue) started; client ingress paused")
        return nil
    }

    /// Leader: starts handing leadership to `target` (as an admin's transfer-leadership does, with
    /// no one to answer); false when this member does not lead, a transfer is under way, or `target`
    /// is itself or not a member. Call on the agent's thread.
    public func startLeadershipTransfer(to target: MemberID) -> Bool {
        guard core.role == .leader, !control.shuttingDown, core.leadershipTransferTarget == nil, target != configuration.selfID,
              configuration.members.contains(where: { $0.id == target })
        else { return false }
        try? step(.transferLeadership(to: target))  // emits sends only: nothing to persist, nothing that throws
        if core.leadershipTransferTarget == target { event("leadership transfer to member \(target.rawValue) started; client ingress paused") }
        return core.leadershipTransferTarget == target
    }

    /// Leader: the batch holding pending actions was appended, ending at `end` (or refused).
    func controlBatchAppended(endingAt end: LogPosition?) {
        if control.shutdownInBatch {
            control.shutdownInBatch = false
            control.shutdownInLog = end != nil
            control.shuttingDown = end != nil
        }
        for index in control.pendingAnswers.indices where control.pendingAnswers[index].end == nil {
            if let end {
                control.pendingAnswers[index].end = end
            } else {
                let pending = control.pendingAnswers[index]
                answerAdmin(pending.correlationID, pending.type, .failed, "the leader could not append the entry; try again", on: pending.connection)
            }
        }
        if end == nil { control.pendingAnswers.removeAll { $0.end == nil } }
    }

    /// A committed cluster action (folding the committed log, every member).
    func actionCommitted(_ frame: LogFrameView) {
        guard let action = ClusterAction(rawValue: frame.correlationID) else { return }
        if action != .shutdown { control.committedSuspended = action == .suspend }
        if action == .shutdown && frame.position >= control.logEndAtStart && core.role == .leader {
            control.shuttingDown = true
            control.shutdownInLog = true
        }
        if core.role != .leader { control.suspendedAtEnd = control.committedSuspended }
    }

    /// After the fold: answers the admin requests whose entries are now committed.
    func answerCommittedActions(upTo target: LogPosition) {
        guard !control.pendingAnswers.isEmpty else { return }
        var kept: [(connection: PeerConnection, correlationID: Int64, type: AdminRequestType, end: LogPosition?)] = []
        for pending in control.pendingAnswers {
            guard let end = pending.end, end <= target else {
                kept.append(pending)
                continue
            }
            let text = switch pending.type {
            case .suspend: "cluster suspended at log position \(end.rawValue): client requests are refused (retryable) until resume"
            case .resume: "cluster resumed at log position \(end.rawValue): client requests are taken again"
            default: "shutdown committed at log position \(end.rawValue): every member writes a final snapshot there and exits"
            }
            answerAdmin(pending.correlationID, pending.type, .ok, text, on: pending.connection)
        }
        control.pendingAnswers = kept
    }

    /// A new leader: the suspended state at its log's end (actions its predecessor appended and
    /// that are not committed yet count: they come before anything it appends).
    func controlOnBecomingLeader() {
        control.suspendedAtEnd = control.committedSuspended
        log.reader.forEachFrame(from: publishedCommit, limit: log.appendedPosition) { frame in
            if frame.type == .clusterAction, let action = ClusterAction(rawValue: frame.correlationID) {
                switch action {
                case .suspend, .resume: control.suspendedAtEnd = action == .suspend
                case .shutdown:
                    if frame.position >= control.logEndAtStart {
                        control.shuttingDown = true
                        control.shutdownInLog = true
                    }
                }
            }
            return true
        }
    }

    /// Leadership lost: pending answers go with the client connections.
    func controlOnLosingLeadership() {
        control.pendingAnswers.removeAll()
        control.transfer = nil
        control.suspendedAtEnd = control.committedSuspended
        control.shuttingDown = false
        control.shutdownInBatch = false
        control.shutdownInLog = false
    }

    /// Each cycle: a transfer the core gave up is answered; after a shutdown was applied, says
    /// when the node may exit (a leader first waits, bounded, until every follower holds the entry
    /// and a few heartbeats have carried the commit to them).
    func superviseControl() -> Int {
        var work = 0
        if let transfer = control.transfer, core.role == .leader, core.leadershipTransferTarget == nil {
            control.transfer = nil
            let millis = (nowNanos &- transfer.startNanos) / 1_000_000
            answerAdmin(
                transfer.correlationID, .transferLeadership, .failed,
                "member \(transfer.target.rawValue) did not take over within \(millis) ms (not caught up, or unreachable); member \(configuration.selfID.rawValue) still leads",
                on: transfer.connection)
            event("leadership transfer to member \(transfer.target.rawValue) given up after \(millis) ms")
            work += 1
        }
        let shutdownAt = shared.shutdownPosition.load(ordering: .acquiring)
        guard shutdownAt >= 0, !shared.exitRequested.load(ordering: .relaxed) else { return work }
        let position = LogPosition(shutdownAt)
        guard core.role == .leader else {
            requestExit("shutdown applied at \(shutdownAt); stopping")
            return work + 1
        }
        let start = control.shutdownWaitStartNanos ?? nowNanos
        control.shutdownWaitStartNanos = start
        let behind = configuration.members.filter { (core.matchPosition(of: $0.id) ?? .zero) < position }
        if behind.isEmpty && control.followersAcknowledgedNanos == nil { control.followersAcknowledgedNanos = nowNanos }
        if let acknowledged = control.followersAcknowledgedNanos, nowNanos &- acknowledged >= 3 * configuration.heartbeatIntervalNanos {
            requestExit("shutdown applied at \(shutdownAt) and held by every member; stopping")
        } else if nowNanos &- start >= ClusterControlState.shutdownWaitNanos {
            requestExit("shutdown applied at \(shutdownAt); members \(behind.map { "\($0.id.rawValue)" }.joined(separator: ",")) did not acknowledge it within \(ClusterControlState.shutdownWaitNanos / 1_000_000_000) s; stopping")
        }
        return work
    }

    private func requestExit(_ text: String) {
        event(text)
        shared.exitRequested.store(true, ordering: .releasing)
    }

    func answerAdmin(_ correlationID: Int64, _ type: AdminRequestType, _ status: AdminStatus, _ text: String, on connection: PeerConnection) {
        let body = Array(text.utf8.prefix(WireProtocol.maxAdminBodyBytes))
        let length = body.withUnsafeBytes {
            AdminResponseFrame.encode(into: scratch, correlationID: correlationID, requestType: type, status: status, body: $0)
        }
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }
}
