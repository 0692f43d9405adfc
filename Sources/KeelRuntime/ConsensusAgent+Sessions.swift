import KeelCore
import KeelLog
import KeelRaft
import KeelService
import KeelWire

/// What the consensus agent keeps about sessions besides the connections: its fold of the
/// committed session entries (no windows), and the leader's view of who is alive.
struct ConsensusSessions {
    /// Sessions as of the published commit position (every member folds it; a new leader checks
    /// reattaches against it).
    var committed = SessionTable(limits: .none)
    /// Leader: cluster time (ns) each session was last heard from.
    var lastHeardNanos: [Int64: Int64] = [:]
    /// Leader: sessions whose close entry is appended but not yet committed.
    var closing: Set<Int64> = []
    /// Leader: the end of its leadership entry; once committed, every earlier entry is too, and
    /// the committed table is complete (reattaches wait for it).
    var readyPosition: LogPosition?
    var isReady = false
    /// Leader: reattaches that arrived before it was ready.
    var waitingReattaches: [(connection: PeerConnection, correlationID: Int64, sessionID: Int64, secret: UInt64, principal: [UInt8])] = []
    /// When the leader last looked for timed-out sessions (monotonic ns).
    var lastTimeoutScanNanos: Int64 = .min
    /// Leader: the duty cycle (its `nowNanos`) whose cluster time `heardAtNanos` holds, and the
    /// session last marked heard in it — requests mark their session once per cycle, not each.
    var heardCycleNanos: Int64 = .min
    var heardAtNanos: Int64 = 0
    var heardSessionID: Int64 = 0
}

/// A connect or reattach waiting for the client's answer to the authenticator's challenge.
struct PendingAuthentication {
    var correlationID: Int64
    var credentials: [UInt8]
    var challenge: [UInt8]
    /// Set for a reattach: the session and the secret presented.
    var reattach: (sessionID: Int64, secret: UInt64)?
}

// Sessions that outlive connections and leaders (issue 8 §2): authentication on connect, opening
// with a secret, reattaching to a new leader, keep-alive timeouts, and closes.
extension ConsensusAgent {
    /// The leader's notion of now for session timeouts: cluster time (never behind the log's).
    func clusterNowNanos() -> Int64 { max(lastClusterTime.rawValue, clock.epochNanos()) }

    /// Marks `sessionID` heard from now, for session timeouts. Reads the clock and writes the
    /// table once per session per duty cycle: per request, the clock read and the dictionary
    /// write were ~6% of the leader's consensus thread at 300,000 msg/s, for a figure that only
    /// has to be good to a timeout of seconds.
    func noteHeard(_ sessionID: Int64) {
        if sessionState.heardCycleNanos != nowNanos {
            sessionState.heardCycleNanos = nowNanos
            sessionState.heardAtNanos = clusterNowNanos()
            sessionState.heardSessionID = 0
        } else if sessionState.heardSessionID == sessionID {
            return
        }
        sessionState.heardSessionID = sessionID
        sessionState.lastHeardNanos[sessionID] = sessionState.heardAtNanos
    }

    // MARK: Authentication

    /// A connect or reattach on the leader: asks the authenticator, then opens or reattaches.
    func authenticate(
        correlationID: Int64, credentials: UnsafeRawBufferPointer, reattach: (sessionID: Int64, secret: UInt64)?, on connection: PeerConnection
    ) {
        let decision = authenticator.authenticate(credentials: credentials)
        let pending = PendingAuthentication(correlationID: correlationID, credentials: Array(credentials), challenge: [], reattach: reattach)
        decide(decision, pending, on: connection)
    }

    /// The client's answer to a challenge.
    func challengeAnswered(_ frame: AuthenticationExchangeFrame, on connection: PeerConnection) {
        guard let pending = connection.pendingAuthentication, pending.correlationID == frame.correlationID else {
            close(connection, reason: "challenge-response with no challenge outstanding")
            return
        }
        connection.pendingAuthentication = nil
        let decision = authenticator.verify(challenge: pending.challenge, response: frame.data, credentials: pending.credentials)
        decide(decision, pending, on: connection)
    }

    private func decide(_ decision: AuthenticationDecision, _ pending: PendingAuthentication, on connection: PeerConnection) {
        switch decision {
        case .accept(let principal):
            connection.principal = principal
            if let reattach = pending.reattach {
                reattachSession(pending.correlationID, sessionID: reattach.sessionID, secret: reattach.secret, principal: principal, on: connection)
            } else {
                openSession(correlationID: pending.correlationID, principal: principal, on: connection)
            }
        case .challenge(let challenge):
            guard challenge.count <= WireProtocol.maxCredentialsBytes else {
                reject(pending.correlationID, .authenticationFailed, "authenticator's challenge is too long", on: connection)
                return
            }
            var waiting = pending
            waiting.challenge = challenge
            connection.pendingAuthentication = waiting
            let length = challenge.withUnsafeBytes { data in
                AuthenticationExchangeFrame.encode(into: scratch, type: .challenge, correlationID: pending.correlationID, data: data)
            }
            enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
        case .reject(let reason):
            event("client refused: authentication failed (\(reason))")
            reject(pending.correlationID, .authenticationFailed, reason, on: connection)
        }
    }

    /// Sends connect-rejected and closes the connection once it has gone out.
    func reject(_ correlationID: Int64, _ reason: ConnectRejection, _ detail: String, on connection: PeerConnection) {
        let text = Array(detail.utf8.prefix(WireProtocol.maxDetailBytes)).map { $0 < 0x20 || $0 == 0x7F ? 0x3F : $0 }
        let length = text.withUnsafeBytes { ConnectRejectedFrame.encode(into: scratch, correlationID: correlationID, reason: reason, detail: $0) }
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
        connection.closeAfterFlush = true
    }

    // MARK: Open and reattach

    private func openSession(correlationID: Int64, principal: [UInt8], on connection: PeerConnection) {
        // Unique across leaders: one leader per term, and the counter restarts with each term.
        let sessionID = core.term.rawValue << 32 | nextSessionCounter
        let secret = nextSecret()
        let payloadLength = principal.withUnsafeBytes { SessionOpenEntry.encode(into: scratch, secret: secret, principal: $0) }
        guard ingress.add(type: .sessionOpen, sessionID: sessionID, correlationID: correlationID, payload: UnsafeRawBufferPointer(rebasing: scratch[0..<payloadLength])) else {
            close(connection, reason: "ingress batch full")
            return
        }
        nextSessionCounter += 1
        bind(sessionID, to: connection)
        let length = ConnectAcceptedFrame.encode(into: scratch, correlationID: correlationID, leaderTerm: core.term, leaderMemberID: configuration.selfID)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }

    func reattachSession(_ correlationID: Int64, sessionID: Int64, secret: UInt64, principal: [UInt8], on connection: PeerConnection) {
        guard sessionState.isReady else {
            sessionState.waitingReattaches.append((connection, correlationID, sessionID, secret, principal))
            return
        }
        guard let session = sessionState.committed[sessionID], !sessionState.closing.contains(sessionID) else {
            reject(correlationID, .sessionNotOpen, "session \(sessionID) is not open (closed, timed out, or never opened)", on: connection)
            return
        }
        guard session.secret == secret, session.principal == principal else {
            reject(correlationID, .authenticationFailed, "secret or principal does not match session \(sessionID)", on: connection)
            return
        }
        bind(sessionID, to: connection)
        var length = ConnectAcceptedFrame.encode(into: scratch, correlationID: correlationID, leaderTerm: core.term, leaderMemberID: configuration.selfID)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
        length = SessionOpenedFrame.encode(
            into: scratch, correlationID: correlationID, sessionID: sessionID, timestamp: ClusterTime(rawValue: clusterNowNanos()), secret: secret)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
        event("session \(sessionID) reattached")
    }

    /// Routes the session's egress to `connection` (taking it from an earlier one, whose frames
    /// for it are refused from now on).
    private func bind(_ sessionID: Int64, to connection: PeerConnection) {
        if let previous = sessions[sessionID], previous !== connection {
            previous.sessionIDs.removeAll { $0 == sessionID }
        }
        sessions[sessionID] = connection
        if !connection.sessionIDs.contains(sessionID) { connection.sessionIDs.append(sessionID) }
        sessionState.lastHeardNanos[sessionID] = clusterNowNanos()
    }

    private func nextSecret() -> UInt64 {
        var secret: UInt64 = 0
        while secret == 0 { secret = secretSource() }
        return secret
    }

    // MARK: Close and time out

    /// Leader: appends a close entry for `sessionID` (once).
    func appendClose(_ sessionID: Int64, reason: CloseReason) {
        guard core.role == .leader, !sessionState.closing.contains(sessionID) else { return }
        guard ingress.add(type: .sessionClose, sessionID: sessionID, correlationID: Int64(reason.rawValue), payload: UnsafeRawBufferPointer(start: nil, count: 0)) else {
            return  // retried: a timeout is found again on the next scan; a client close by its timeout
        }
        sessionState.closing.insert(sessionID)
    }

    /// Leader, a few times per session timeout: closes (reason: timeout) every session silent for
    /// longer than the timeout. Scanned in id order, so a run replays exactly.
    func scanForTimeouts(nowNanos monotonicNanos: Int64) -> Int {
        guard core.role == .leader, sessionState.isReady else { return 0 }
        let interval = max(configuration.sessionTimeoutNanos / 8, 1_000_000)
        guard monotonicNanos &- sessionState.lastTimeoutScanNanos >= interval || sessionState.lastTimeoutScanNanos == .min else { return 0 }
        sessionState.lastTimeoutScanNanos = monotonicNanos
        let now = clusterNowNanos()
        var closed = 0
        for id in sessionState.committed.sortedIDs where !sessionState.closing.contains(id) {
            let heard = sessionState.lastHeardNanos[id] ?? now
            if sessionState.lastHeardNanos[id] == nil { sessionState.lastHeardNanos[id] = now }
            if now - heard > configuration.sessionTimeoutNanos {
                event("session \(id) timed out (silent for \((now - heard) / 1_000_000) ms)")
                appendClose(id, reason: .timedOut)
                closed += 1
            }
        }
        return closed
    }

    // MARK: The committed fold

    /// Folds the session entries in [publishedCommit, target) into the committed table (before
    /// the service agent may apply them, so their egress finds the table up to date).
    func foldCommittedSessions(upTo target: LogPosition) {
        log.reader.forEachFrame(from: publishedCommit, limit: target) { frame in
            switch frame.type {
            case .sessionOpen:
                let opening = SessionOpenEntry.decode(frame.payload) ?? (secret: 0, principal: [])
                sessionState.committed.open(id: frame.sessionID, secret: opening.secret, principal: opening.principal, timestamp: frame.timestamp)
                if core.role == .leader && sessionState.lastHeardNanos[frame.sessionID] == nil {
                    sessionState.lastHeardNanos[frame.sessionID] = clusterNowNanos()
                }
            case .sessionClose:
                sessionState.committed.close(id: frame.sessionID)
                sessionState.closing.remove(frame.sessionID)
                sessionState.lastHeardNanos.removeValue(forKey: frame.sessionID)
            case .snapshotMarker:
                markerCommitted(endingAt: frame.endPosition)
            case .clusterAction:
                actionCommitted(frame)
            default:
                break
            }
            return true
        }
        if core.role == .leader, !sessionState.isReady, let ready = sessionState.readyPosition, target >= ready {
            becomeReady()
        }
        answerCommittedActions(upTo: target)
    }

    /// The new leader's own entry is committed: every session any earlier leader opened is in the
    /// committed table. Sessions get a full timeout from now to find it; waiting reattaches go on.
    private func becomeReady() {
        sessionState.isReady = true
        let now = clusterNowNanos()
        for id in sessionState.committed.sortedIDs { sessionState.lastHeardNanos[id] = now }
        let waiting = sessionState.waitingReattaches
        sessionState.waitingReattaches.removeAll()
        for entry in waiting where !entry.connection.isClosed {
            reattachSession(entry.correlationID, sessionID: entry.sessionID, secret: entry.secret, principal: entry.principal, on: entry.connection)
        }
    }

    /// Leadership changed: a new leader waits for its entry to commit; a former leader forgets
    /// who was alive (the next leader starts its own clock).
    func sessionsOnRoleChange(isLeader: Bool) {
        sessionState.lastHeardNanos.removeAll()
        sessionState.closing.removeAll()
        sessionState.waitingReattaches.removeAll()
        sessionState.isReady = false
        sessionState.lastTimeoutScanNanos = .min
        sessionState.readyPosition = isLeader ? log.appendedPosition : nil
    }
}
