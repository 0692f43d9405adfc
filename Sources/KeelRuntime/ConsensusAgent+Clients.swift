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
            connect(correlationID: frame.correlationID, on: connection)
        case .request(let frame):
            guard ownsSession(frame.sessionID, connection) else { return }
            guard ingress.add(type: .sessionMessage, sessionID: frame.sessionID, correlationID: frame.sequence, payload: frame.payload) else {
                close(connection, reason: "request of \(frame.payload.count) bytes exceeds the ingress batch")
                return
            }
        case .keepAlive(let frame):
            _ = ownsSession(frame.sessionID, connection)
        case .close(let frame):
            guard ownsSession(frame.sessionID, connection) else { return }
            closeSession(frame.sessionID, connection: connection)
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

    private func connect(correlationID: Int64, on connection: PeerConnection) {
        guard core.role == .leader else {
            if let leader = core.leaderID, leader != configuration.selfID, let endpoint = configuration.endpoint(of: leader) {
                let host = Array(endpoint.host.utf8)
                let length = host.withUnsafeBytes { bytes in
                    RedirectFrame.encode(
                        into: scratch, correlationID: correlationID, leaderTerm: core.term, leaderMemberID: leader, host: bytes,
                        port: endpoint.clientPort)
                }
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            } else {
                let detail = Array("member \(configuration.selfID.rawValue) knows no leader yet (term \(core.term.rawValue)); retry".utf8)
                let length = detail.withUnsafeBytes { text in
                    ConnectRejectedFrame.encode(into: scratch, correlationID: correlationID, reason: .noLeader, detail: text)
                }
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            }
            connection.closeAfterFlush = true
            return
        }
        // Unique across leaders: one leader per term, and the counter restarts with each term.
        let sessionID = core.term.rawValue << 32 | nextSessionCounter
        guard ingress.add(type: .sessionOpen, sessionID: sessionID, correlationID: correlationID, payload: UnsafeRawBufferPointer(start: nil, count: 0)) else {
            close(connection, reason: "ingress batch full")
            return
        }
        nextSessionCounter += 1
        sessions[sessionID] = connection
        connection.sessionIDs.append(sessionID)
        let length = ConnectAcceptedFrame.encode(into: scratch, correlationID: correlationID, leaderTerm: core.term, leaderMemberID: configuration.selfID)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }

    private func closeSession(_ sessionID: Int64, connection: PeerConnection) {
        sessions.removeValue(forKey: sessionID)
        connection.sessionIDs.removeAll { $0 == sessionID }
        if core.role == .leader {
            _ = ingress.add(type: .sessionClose, sessionID: sessionID, correlationID: 1, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        }
    }

    /// A client connection ended: its sessions close (as log entries, on the leader).
    func clientClosed(_ connection: PeerConnection) {
        for sessionID in connection.sessionIDs where sessions[sessionID] === connection {
            closeSession(sessionID, connection: connection)
        }
        connection.sessionIDs.removeAll()
    }

    /// Sends the service's egress to the clients (leader only; a follower's is discarded). Stops at
    /// a record whose client's queue is full, to retry it next cycle.
    func drainEgress() -> Int {
        var work = 0
        while let record = egress.peek() {
            defer { work += 1 }
            guard core.role == .leader, let connection = sessions[record.sessionID], !connection.isClosed else {
                egress.release()
                continue
            }
            let needed = ResponseFrame.fixedBytes + record.payload.count
            guard connection.sendQueue.freeBytes >= needed else { return work }
            switch record.kind {
            case .response:
                if let space = connection.sendQueue.reserve(needed) {
                    _ = ResponseFrame.encode(into: space, sessionID: record.sessionID, sequence: record.correlation, timestamp: record.timestamp, payload: record.payload)
                    connection.sendQueue.commitReserved(needed, nowNanos: nowNanos)
                } else {
                    let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: needed, alignment: 8)
                    _ = ResponseFrame.encode(into: frame, sessionID: record.sessionID, sequence: record.correlation, timestamp: record.timestamp, payload: record.payload)
                    enqueue(UnsafeRawBufferPointer(frame), on: connection)
                    frame.deallocate()
                }
                counters?.framesOut.increment()
            case .sessionOpened:
                let length = SessionOpenedFrame.encode(into: scratch, correlationID: record.correlation, sessionID: record.sessionID, timestamp: record.timestamp, secret: 0)
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            case .sessionClosed:
                let reason = SessionCloseReason(rawValue: UInt16(truncatingIfNeeded: record.correlation)) ?? .clientClosed
                let length = SessionClosedFrame.encode(into: scratch, sessionID: record.sessionID, timestamp: record.timestamp, reason: reason)
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
                // A close the client did not ask for (the service's, a timeout's): forget the session here too.
                sessions.removeValue(forKey: record.sessionID)
                connection.sessionIDs.removeAll { $0 == record.sessionID }
            case .padding:
                break
            }
            egress.release()
        }
        return work
    }
}
