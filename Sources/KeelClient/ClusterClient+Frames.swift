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
            guard sessionID == 0 || opened.sessionID == sessionID else {
                return fail(.rejected(.sessionNotOpen, detail: "reattached session \(sessionID), but the leader named \(opened.sessionID)"))
            }
            sessionDidOpen(opened.sessionID, secret: opened.secret, now: now)
        case .sessionClosed(let closed):
            guard closed.sessionID == sessionID else {
                return connectionLost("session-closed for another session from \(currentTarget)", now: now)
            }
            // Exactly-once ends with the session: a new one could apply outstanding requests again.
            fail(closeRequested ? .closed : .sessionClosed(closed.reason, outstandingRequests: outstanding.count))
        case .response(let response):
            deliver(response, now: now, handler)
        case .requestRejected(let rejected):
            requestRejected(rejected, now: now, handler)
        case .challenge(let challenge):
            answer(challenge, now: now)
        case .adminResponse(let response):
            adminResponses.append(AdminAnswer(
                correlationID: response.correlationID, requestType: response.requestType, status: response.status,
                text: String(decoding: response.body, as: UTF8.self)))
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

    /// The first session: number every outstanding request from sequence 1. A reattached one:
    /// send every unacknowledged request again, with its original sequence.
    private func sessionDidOpen(_ id: Int64, secret: UInt64, now: Int64) {
        inFlightEndID = nil
        releaseAcknowledged()
        if sessionID == 0 {
            sessionID = id
            sessionSecret = secret
            sequenceOffset = outstanding.firstRequestID - 1
            for index in 0..<outstanding.count {
                outstanding.restamp(at: index, sessionID: id, sequence: Int64(index + 1))
            }
            sessionsOpened += 1
        } else {
            requestsResent += Int(max(0, nextToSendID - outstanding.firstRequestID))
            reattachments += 1
        }
        resentRequestID = 0
        refusedResendFromID = nil
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
            // A response older than one already handed over is a replay (from a leader applying what
            // its predecessor answered): drop it. Equal IDs pass: a request may have several responses.
            guard requestID >= highestAcknowledgedID || response.isResent else {
                duplicateResponsesDropped += 1
                return
            }
            if response.isResent {
                // A retried request's responses, from the window: wanted only if it is not answered yet.
                guard requestID > highestAcknowledgedID || requestID == resentRequestID else {
                    duplicateResponsesDropped += 1
                    return
                }
                resentRequestID = requestID
            }
            highestAcknowledgedID = max(highestAcknowledgedID, requestID)
            releaseAcknowledged()
        }
        handler(ClusterResponse(requestID: requestID, sessionID: response.sessionID, timestamp: response.timestamp, payload: response.payload))
    }

    /// A retried request whose responses are gone is answered (it was applied) with the rejection;
    /// a sequence out of order means this client and the cluster disagree: the client stops.
    private func requestRejected(_ rejected: RequestRejectedFrame, now: Int64, _ handler: (ClusterResponse) -> Void) {
        guard phase == .open, rejected.sessionID == sessionID else {
            return connectionLost("request-rejected for session \(rejected.sessionID) from \(currentTarget)", now: now)
        }
        let requestID = rejected.sequence + sequenceOffset
        switch rejected.reason {
        case .responseNoLongerAvailable:
            guard requestID > highestAcknowledgedID else { return }
            highestAcknowledgedID = requestID
            releaseAcknowledged()
            handler(ClusterResponse(
                requestID: requestID, sessionID: sessionID, timestamp: .zero, payload: UnsafeRawBufferPointer(start: nil, count: 0),
                rejection: .responseNoLongerAvailable))
        case .clusterSuspended, .shuttingDown:
            // Not applied: sent again, with the same sequence, after a pause (sending stops until then).
            guard requestID > highestAcknowledgedID, requestID >= outstanding.firstRequestID else { return }
            requestsRefused += 1
            refusedResendFromID = min(refusedResendFromID ?? requestID, requestID)
            refusedRetryAtNanos = now + configuration.retryDelayNanos
            refusedRangeEndID = max(refusedRangeEndID, inFlightEndID ?? nextToSendID)
        case .sequenceOutOfOrder:
            let expectedID = rejected.expectedSequence + sequenceOffset
            if requestID < refusedRangeEndID && expectedID < requestID && expectedID >= outstanding.firstRequestID {
                // A request after a refused one, reaching a cluster that had resumed: the resend,
                // in order from the one it expects, closes the gap.
                refusedResendFromID = min(refusedResendFromID ?? expectedID, expectedID)
                refusedRetryAtNanos = max(refusedRetryAtNanos, now)
                return
            }
            fail(.sequenceOutOfOrder(requestID: requestID, sequence: rejected.sequence, expected: rejected.expectedSequence))
        }
    }

    /// The leader's authenticator asks: answer with the configured responder.
    private func answer(_ challenge: AuthenticationExchangeFrame, now: Int64) {
        guard phase == .awaitingReply, challenge.correlationID == Int64(generation), let connection else {
            return connectionLost("unexpected challenge from \(currentTarget)", now: now)
        }
        guard let responder = configuration.challengeResponder else {
            return fail(.rejected(.authenticationFailed, detail: "the cluster sent a challenge and no challenge responder is configured"))
        }
        let response = responder(Array(challenge.data))
        guard response.count <= WireProtocol.maxCredentialsBytes else {
            return fail(.rejected(.authenticationFailed, detail: "challenge response longer than \(WireProtocol.maxCredentialsBytes) bytes"))
        }
        // The connect slot is free again: the connect went out before the challenge came back.
        let slot = UnsafeMutableRawBufferPointer(rebasing: controlBuffer[0..<Self.connectSlotBytes])
        let length = response.withUnsafeBytes {
            AuthenticationExchangeFrame.encode(into: slot, type: .challengeResponse, correlationID: Int64(generation), data: $0)
        }
        do throws(IOError) {
            try transport.submitSend(connection, UnsafeRawBufferPointer(rebasing: slot[0..<length]), token: token(.connectFrame))
            lastSendNanos = now
        } catch {
            connectionLost("send to \(currentTarget) failed: \(error)", now: now)
        }
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
