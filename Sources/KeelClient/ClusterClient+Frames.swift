import KeelCore
import KeelWire

// What each inbound frame does to the client.

extension ClusterClient {
    func handleFrame(_ message: WireMessage, now: Int64, _ handler: (ClusterResponse) -> Void) {
        switch message {
        case .connectAccepted(let accepted):
            guard phase == .awaitingReply, accepted.correlationID == Int64(generation) else {
                return connectionLost("unexpected connect-accepted from \(currentTarget)", now: now)
            }
            leaderMemberID = accepted.leaderMemberID
            leaderTerm = accepted.leaderTerm
            phase = .awaitingSession
        case .redirect(let redirect):
            guard phase == .awaitingReply, redirect.correlationID == Int64(generation) else {
                return connectionLost("unexpected redirect from \(currentTarget)", now: now)
            }
            followRedirect(redirect, now: now)
        case .connectRejected(let rejected):
            guard rejected.correlationID == Int64(generation) else {
                return connectionLost("connect-rejected for another connect from \(currentTarget)", now: now)
            }
            switch rejected.reason {
            case .authenticationFailed, .protocolVersion, .sessionNotOpen:
                fail(.rejected(rejected.reason, detail: rejected.detail))
            case .noLeader, .tooManySessions, .shuttingDown:
                attemptFailed("\(currentTarget) rejected the connect: \(rejected.reason)", now: now)
            }
        case .sessionOpened(let opened):
            guard phase == .awaitingSession, opened.correlationID == Int64(generation) else {
                return connectionLost("unexpected session-opened from \(currentTarget)", now: now)
            }
            sessionDidOpen(opened.sessionID, now: now)
        case .sessionClosed(let closed):
            guard closed.sessionID == sessionID else {
                return connectionLost("session-closed for another session from \(currentTarget)", now: now)
            }
            if closeRequested {
                fail(.closed)
            } else {
                // At-least-once: a session ended by the cluster is replaced and its requests re-sent.
                connectionLost("session \(closed.sessionID) closed by the cluster: \(closed.reason)", now: now)
            }
        case .response(let response):
            deliver(response, now: now, handler)
        default:
            connectionLost("unexpected \(message.type) frame from \(currentTarget)", now: now)
        }
    }

    private func followRedirect(_ redirect: RedirectFrame, now: Int64) {
        leaderMemberID = redirect.leaderMemberID
        leaderTerm = redirect.leaderTerm
        let target = (host: redirect.host, port: redirect.port, member: redirect.leaderMemberID)
        lastProblem = "\(currentTarget) redirected to \(target.member)@\(target.host):\(target.port)"
        dropConnection()
        if let index = configuration.members.firstIndex(where: { $0.id == target.member }) {
            // If the named leader fails us, the search carries on after it.
            memberCursor = index
        }
        redirectTarget = target
        attemptsSinceDelay += 1
        if attemptsSinceDelay >= configuration.members.count + 1 {
            attemptsSinceDelay = 0
            phase = .retryWait(untilNanos: now + configuration.retryDelayNanos)
        } else {
            phase = .retryWait(untilNanos: now)
        }
    }

    /// A new session: renumber every outstanding request from sequence 1 and send them again.
    private func sessionDidOpen(_ id: Int64, now: Int64) {
        sessionID = id
        inFlightEndID = nil
        releaseAcknowledged()
        sequenceOffset = outstanding.firstRequestID - 1
        for index in 0..<outstanding.count {
            outstanding.restamp(at: index, sessionID: id, sequence: Int64(index + 1))
        }
        if sessionsOpened > 0 { requestsResent += outstanding.count }
        sessionsOpened += 1
        nextToSendID = outstanding.firstRequestID
        inFlightEndID = nil
        searchStartNanos = nil
        attemptsSinceDelay = 0
        lastReceiveNanos = now
        phase = .open
        flushRequests(now: now)
    }

    /// Hands a response to the caller; it acknowledges its request and every earlier one.
    private func deliver(_ response: ResponseFrame, now: Int64, _ handler: (ClusterResponse) -> Void) {
        guard phase == .open, response.sessionID == sessionID else {
            return connectionLost("response for session \(response.sessionID) from \(currentTarget)", now: now)
        }
        var requestID: Int64 = 0
        if response.sequence > 0 {
            requestID = response.sequence + sequenceOffset
            let sentEnd = inFlightEndID ?? nextToSendID
            guard requestID < sentEnd else {
                return connectionLost("response to request \(requestID), which was never sent, from \(currentTarget)", now: now)
            }
            highestAcknowledgedID = max(highestAcknowledgedID, requestID)
            releaseAcknowledged()
        }
        handler(ClusterResponse(requestID: requestID, sessionID: response.sessionID, timestamp: response.timestamp, payload: response.payload))
    }

    /// Drops acknowledged requests, but never bytes a send in flight may still read (those go when
    /// it completes).
    func releaseAcknowledged() {
        let releasable = inFlightEndID == nil ? highestAcknowledgedID : min(highestAcknowledgedID, nextToSendID - 1)
        if releasable >= outstanding.firstRequestID {
            outstanding.removeFirst(Int(releasable - outstanding.firstRequestID + 1))
        }
    }
}
