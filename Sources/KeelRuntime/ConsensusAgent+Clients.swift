import KeelCore
import KeelLog
import KeelRaft
import KeelWire

// Client ingress (connect → redirect or session; requests → log entries) and egress (the service's
// responses, sent only by the leader).
extension ConsensusAgent {
    func handleClientFrame(_ message: WireMessage, on connection: PeerConnection) {
        switch message {
        case .connect(let frame):
            guard redirectUnlessLeader(frame.correlationID, on: connection), admitsConnects(frame.correlationID, on: connection) else { return }
            authenticate(correlationID: frame.correlationID, credentials: frame.credentials, reattach: nil, on: connection)
        case .reattach(let frame):
            guard redirectUnlessLeader(frame.correlationID, on: connection), admitsConnects(frame.correlationID, on: connection) else { return }
            authenticate(
                correlationID: frame.correlationID, credentials: frame.credentials, reattach: (frame.sessionID, frame.secret), on: connection)
        case .challengeResponse(let frame):
            challengeAnswered(frame, on: connection)
        case .request(let frame):
            guard ownsSession(frame.sessionID, connection) else { return }
            if refusesRequests {
                refuseRequest(frame, on: connection)
                sessionState.lastHeardNanos[frame.sessionID] = clusterNowNanos()
                return
            }
            guard ingress.add(type: .sessionMessage, sessionID: frame.sessionID, correlationID: frame.sequence, payload: frame.payload) else {
                close(connection, reason: "request of \(frame.payload.count) bytes exceeds the ingress batch")
                return
            }
            noteHeard(frame.sessionID)
        case .keepAlive(let frame):
            guard ownsSession(frame.sessionID, connection) else { return }
            noteHeard(frame.sessionID)
        case .close(let frame):
            guard ownsSession(frame.sessionID, connection) else { return }
            // The connection keeps the session until the close entry is applied, to hear session-closed.
            appendClose(frame.sessionID, reason: .clientClosed)
        case .adminRequest(let frame):
            answerAdmin(frame, on: connection)
        default:
            close(connection, reason: "unexpected \(message.type) from a client")
        }
    }

    private func ownsSession(_ sessionID: Int64, _ connection: PeerConnection) -> Bool {
        guard sessions[sessionID] === connection else {
            close(connection, reason: "frame for session \(sessionID), which is not open on this connection")
            return false
        }
        return true
    }

    /// A shutting-down leader takes no new sessions (`shuttingDown`: the client retries elsewhere).
    private func admitsConnects(_ correlationID: Int64, on connection: PeerConnection) -> Bool {
        guard control.shuttingDown else { return true }
        reject(correlationID, .shuttingDown, "the cluster is shutting down", on: connection)
        return false
    }

    /// A follower answers a connect or reattach with a redirect (or "no leader"); true on the leader.
    private func redirectUnlessLeader(_ correlationID: Int64, on connection: PeerConnection) -> Bool {
        guard core.role != .leader else { return true }
        if let leader = core.leaderID, leader != configuration.selfID, let endpoint = configuration.endpoint(of: leader) {
            let host = Array(endpoint.host.utf8)
            let length = host.withUnsafeBytes { bytes in
                RedirectFrame.encode(
                    into: scratch, correlationID: correlationID, leaderTerm: core.term, leaderMemberID: leader, host: bytes,
                    port: endpoint.clientPort)
            }
            enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            connection.closeAfterFlush = true
        } else {
            reject(correlationID, .noLeader, "member \(configuration.selfID.rawValue) knows no leader yet (term \(core.term.rawValue)); retry", on: connection)
        }
        return false
    }

    /// Admin requests need a connection authenticated as a principal the authenticator lets
    /// administer (the others get `unauthorised`). Served: take-snapshot, and the cluster-wide
    /// commands (ConsensusAgent+Control: answered once done); describe is `unsupported`.
    private func answerAdmin(_ frame: AdminRequestFrame, on connection: PeerConnection) {
        let authorised = connection.principal.map { authenticator.mayAdminister(principal: $0) } ?? false
        var status: AdminStatus = authorised ? .unsupported : .unauthorised
        var text = ""
        if authorised {
            switch frame.requestType {
            case .takeSnapshot:
                (status, text) = requestSnapshot()
                event("admin: take-snapshot: \(status) (\(text))")
            case .suspend, .resume, .shutdown, .transferLeadership:
                guard let answer = controlRequest(frame, on: connection) else { return }  // answered when done
                (status, text) = answer
            case .describe:
                break
            }
        }
        answerAdmin(frame.correlationID, frame.requestType, status, text, on: connection)
    }

    /// A client connection ended: its sessions stay open (the client may reattach, here or to the
    /// next leader) until they close or time out; only the routing goes.
    func clientClosed(_ connection: PeerConnection) {
        for sessionID in connection.sessionIDs where sessions[sessionID] === connection {
            sessions.removeValue(forKey: sessionID)
        }
        connection.sessionIDs.removeAll()
        connection.pendingAuthentication = nil
    }

    /// Sends the service's egress to the clients (leader only; a follower's is discarded). Stops at
    /// a record whose client's queue is full, to retry it next cycle.
    func drainEgress() -> Int {
        var work = 0
        // The connection of the last record's session: runs of records for one session (a batch
        // of responses) look the table up once. Only a session-closed record changes the table.
        var lastSessionID: Int64 = 0
        var lastConnection: PeerConnection?
        while let record = egress.peek() {
            defer { work += 1 }
            if record.kind == .closeSession {
                // Not bound to a connection: the service closes sessions whether or not their client is here.
                appendClose(record.sessionID, reason: .closedByService)
                egress.release()
                continue
            }
            if record.sessionID != lastSessionID {
                lastSessionID = record.sessionID
                lastConnection = sessions[record.sessionID]
            }
            guard core.role == .leader, let connection = lastConnection, !connection.isClosed else {
                egress.release()
                continue
            }
            let needed = ResponseFrame.fixedBytes + record.payload.count
            guard connection.sendQueue.freeBytes >= needed else { return work }
            switch record.kind {
            case .response, .resentResponse:
                let resent = record.kind == .resentResponse
                if let space = connection.sendQueue.reserve(needed) {
                    _ = ResponseFrame.encode(
                        into: space, sessionID: record.sessionID, sequence: record.correlation, timestamp: record.timestamp, payload: record.payload,
                        resent: resent)
                    connection.sendQueue.commitReserved(needed, nowNanos: nowNanos)
                } else {
                    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: needed, alignment: 8)
                    _ = ResponseFrame.encode(
                        into: frame, sessionID: record.sessionID, sequence: record.correlation, timestamp: record.timestamp, payload: record.payload,
                        resent: resent)
                    enqueue(UnsafeRawBufferPointer(frame), on: connection)
                    frame.deallocate()
                }
                counters?.framesOut.increment()
            case .sessionOpened:
                let secret = sessionState.committed[record.sessionID]?.secret ?? 0
                let length = SessionOpenedFrame.encode(
                    into: scratch, correlationID: record.correlation, sessionID: record.sessionID, timestamp: record.timestamp, secret: secret)
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            case .sessionClosed:
                let reason = SessionCloseReason(rawValue: UInt16(truncatingIfNeeded: record.correlation)) ?? .clientClosed
                let length = SessionClosedFrame.encode(into: scratch, sessionID: record.sessionID, timestamp: record.timestamp, reason: reason)
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
                sessions.removeValue(forKey: record.sessionID)
                connection.sessionIDs.removeAll { $0 == record.sessionID }
                lastSessionID = 0
            case .requestRejected:
                let expected = record.payload.loadUnaligned(fromByteOffset: 0, as: Int64.self)
                let reason = RequestRejection(rawValue: record.payload.loadUnaligned(fromByteOffset: 8, as: UInt16.self)) ?? .sequenceOutOfOrder
                let detail = Array("request \(record.correlation) of session \(record.sessionID): \(reason); the session expects \(expected)".utf8)
                let length = detail.withUnsafeBytes {
                    RequestRejectedFrame.encode(
                        into: scratch, sessionID: record.sessionID, sequence: record.correlation, expectedSequence: expected, reason: reason, detail: $0)
                }
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            case .closeSession, .padding:
                break
            }
            egress.release()
        }
        return work
    }
}
