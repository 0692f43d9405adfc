import KeelCore
import KeelRaft
import KeelWire

// Connections: accept, connect, receive, send, close — all completion-based through the transport.
extension ConsensusAgent {
    /// Reaps the transport's completions, then handles each (never from inside the reaping).
    func reapNetwork() throws -> Int {
        completions.removeAll()
        transport.reapCompletions(into: &completions)
        let count = completions.count
        for index in 0..<count {
            let completion = completions[index]
            try handle(completion)
        }
        completions.removeAll()
        return count
    }

    private func handle(_ completion: IOCompletion) throws {
        guard let operation = NetworkToken.operation(completion.token) else { return }
        switch operation {
        case .acceptMember, .acceptClient:
            accepted(completion, member: operation == .acceptMember)
            return
        default: break
        }
        let raw = NetworkToken.connection(completion.token)
        let serial = NetworkToken.serial(completion.token)
        let connection: PeerConnection
        if operation == .connect, let pending = connections.values.first(where: { $0.serial & 0xFFF == serial && !$0.isConnected }) {
            connection = pending  // a connect's token was made before its connection id was known
        } else if let live = connections[raw], live.serial & 0xFFF == serial {
            connection = live
        } else if let index = closing.firstIndex(where: { $0.id.rawValue == raw && $0.serial & 0xFFF == serial }) {
            connection = closing[index]
        } else {
            return
        }
        switch operation {
        case .connect: connected(connection, completion)
        case .send: sent(connection, completion)
        case .receive: try received(connection, completion)
        default: break
        }
        if connection.isClosed, connection.isIdle, let index = closing.firstIndex(where: { $0 === connection }) {
            closing.remove(at: index)
        }
    }

    private func accepted(_ completion: IOCompletion, member: Bool) {
        guard let listener = member ? memberListener : clientListener, !stopped else { return }
        // Keep accepting, whatever happened to this one.
        try? transport.submitAccept(listener, token: NetworkToken.make(member ? .acceptMember : .acceptClient))
        guard completion.succeeded else { return }
        let id = ConnectionID(rawValue: completion.result)
        if !member && clientConnectionCount >= configuration.maxClientConnections {
            transport.close(id)
            event("client connection refused: \(configuration.maxClientConnections) already open")
            return
        }
        let connection = register(id, kind: member ? .memberInbound : .client, connected: true)
        postReceive(connection)
    }

    var clientConnectionCount: Int { connections.values.reduce(0) { $0 + ($1.kind == .client ? 1 : 0) } }

    func register(_ id: ConnectionID, kind: PeerConnection.Kind, connected: Bool) -> PeerConnection {
        let isMember = kind != .client
        let connection = PeerConnection(
            id: id, kind: kind, serial: nextSerial, maxFrameBytes: isMember ? memberFrameBytes : clientFrameBytes,
            sendQueueBytes: isMember ? memberSendQueueBytes : clientSendQueueBytes, connected: connected)
        nextSerial += 1
        if let stale = connections[id.rawValue] { close(stale, reason: nil) }
        connections[id.rawValue] = connection
        counters?.connections.set(Int64(connections.count))
        return connection
    }

    /// Lower ids connect to higher ones; a lost connection is retried after a pause.
    func connectToPeers() {
        guard !stopped else { return }
        for member in configuration.members where member.id > configuration.selfID && peers[member.id] == nil {
            if connections.values.contains(where: { $0.kind == .memberOutbound(member.id) }) { continue }
            if let at = reconnectAtNanos[member.id], nowNanos < at { continue }
            reconnectAtNanos[member.id] = nowNanos &+ 200_000_000
            let token = NetworkToken.make(.connect, serial: nextSerial)
            let route = configuration.memberRoutes[member.id] ?? (member.host, member.memberPort)
            guard let id = try? transport.submitConnect(host: route.host, port: route.port, token: token) else { continue }
            // The token was made with the serial `register` hands out next, and the id is now known.
            let connection = register(id, kind: .memberOutbound(member.id), connected: false)
            _ = connection
        }
    }

    private func connected(_ connection: PeerConnection, _ completion: IOCompletion) {
        guard !connection.isClosed else { return }
        guard completion.succeeded else {
            close(connection, reason: nil)
            return
        }
        connection.isConnected = true
        let length = HandshakeFrame.encode(
            into: scratch, clientOrMember: configuration)
        _ = enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
        sendNonceIfAuthenticating(on: connection)
        postReceive(connection)
    }

    func postReceive(_ connection: PeerConnection) {
        guard !connection.receiveInFlight, !connection.isClosed, !connection.hasUndrainedFrames else { return }
        let space = connection.decoder.receiveSpace()
        guard space.count > 0 else { return }
        let token = NetworkToken.make(.receive, serial: connection.serial, connection: connection.id)
        do {
            try transport.submitReceive(connection.id, into: space, token: token)
            connection.receiveInFlight = true
        } catch {
            close(connection, reason: "receive failed: \(error)")
        }
    }

    private func received(_ connection: PeerConnection, _ completion: IOCompletion) throws {
        connection.receiveInFlight = false
        guard !connection.isClosed else { return }
        guard completion.result > 0 else {
            close(connection, reason: completion.result == 0 ? nil : "receive failed: \(completion.error!)")
            return
        }
        connection.decoder.didReceive(byteCount: Int(completion.result))
        counters?.bytesIn.increment(by: Int64(completion.result))
        try drainFrames(connection)
        postReceive(connection)
    }

    /// Handles the whole frames buffered on `connection`.
    /// A malformed frame closes only its connection: counted by reason, recorded in the error log.
    func rejectFrame(_ rejection: WireRejection, on connection: PeerConnection) {
        counters?.rejectedFrames(reasonCode: Int(rejection.reason.rawValue)).increment()
        let peer = connection.member.map { "member \($0.rawValue)" } ?? "a client"
        reportError(.protocolViolation, "bad frame from \(peer): \(rejection)")
        close(connection, reason: "bad frame: \(rejection)")
    }

    func drainFrames(_ connection: PeerConnection) throws {
        connection.hasUndrainedFrames = false
        while !connection.isClosed {
            if connection.kind == .client && (ingress.freeBytes < clientFrameBytes || core.leadershipTransferTarget != nil) {
                // Resumed after the batch is proposed, or the leadership transfer ends (the
                // client then follows the new leader, re-sending what was not answered).
                connection.hasUndrainedFrames = true
                return
            }
            let frame: UnsafeRawBufferPointer
            do {
                guard let next = try connection.decoder.nextFrame() else { return }
                frame = next
            } catch {
                rejectFrame(error, on: connection)
                return
            }
            counters?.framesIn.increment()
            let message: WireMessage
            do {
                message = try WireMessage(validating: frame)
            } catch {
                rejectFrame(error, on: connection)
                return
            }
            if connection.kind == .client {
                handleClientFrame(message, on: connection)
            } else {
                try handleMemberFrame(message, on: connection)
            }
        }
    }

    /// Client connections that stopped because the ingress batch was full.
    func drainUndrainedClients() throws -> Int {
        var work = 0
        for connection in connections.values where connection.hasUndrainedFrames {
            try drainFrames(connection)
            postReceive(connection)
            work += 1
        }
        return work
    }

    /// Copies `bytes` into the connection's send queue; false (and counted) when it is full.
    @discardableResult
    func enqueue(_ bytes: UnsafeRawBufferPointer, on connection: PeerConnection) -> Bool {
        guard !connection.isClosed else { return false }
        guard connection.sendQueue.offer(bytes, nowNanos: nowNanos) else {
            counters?.backPressureEvents.increment()
            return false
        }
        counters?.framesOut.increment()
        return true
    }

    /// Starts a send on every connection with queued bytes and none in flight; disconnects peers
    /// that stopped reading.
    func flushSends() -> Int {
        var work = 0
        for connection in connections.values where connection.isConnected && !connection.isClosed {
            if connection.sendQueue.isStalled(nowNanos: nowNanos, timeoutNanos: 10_000_000_000) {
                counters?.stalledPeersDisconnected.increment()
                close(connection, reason: "peer stopped reading")
                continue
            }
            if connection.closeAfterFlush && connection.sendQueue.isEmpty {
                close(connection, reason: nil)
                continue
            }
            let token = NetworkToken.make(.send, serial: connection.serial, connection: connection.id)
            do {
                if try connection.sendQueue.flush(via: transport, connection: connection.id, token: token) { work += 1 }
            } catch {
                close(connection, reason: "send failed: \(error)")
            }
        }
        return work
    }

    private func sent(_ connection: PeerConnection, _ completion: IOCompletion) {
        guard completion.result >= 0 else {
            connection.sendQueue.abandonSend()
            close(connection, reason: connection.isClosed ? nil : "send failed: \(completion.error!)")
            return
        }
        connection.sendQueue.completeSend(bytes: Int(completion.result), nowNanos: nowNanos)
        counters?.bytesOut.increment(by: Int64(completion.result))
    }

    /// Closes a connection (its buffers stay until its operations complete) and forgets its role.
    func close(_ connection: PeerConnection, reason: String?) {
        guard !connection.isClosed else { return }
        connection.isClosed = true
        transport.close(connection.id)
        if connections[connection.id.rawValue] === connection { connections.removeValue(forKey: connection.id.rawValue) }
        if !connection.isIdle { closing.append(connection) }
        counters?.connections.set(Int64(connections.count))
        if let member = connection.member, peers[member] === connection {
            peers.removeValue(forKey: member)
            event("connection to member \(member.rawValue) closed\(reason.map { ": \($0)" } ?? "")")
        } else if let reason {
            event("\(connection.kind == .client ? "client" : "member") connection closed: \(reason)")
        }
        if connection.kind == .client { clientClosed(connection) }
    }
}

extension HandshakeFrame {
    /// Outbound encoder of this member's handshake.
    static func encode(into buffer: UnsafeMutableRawBufferPointer, clientOrMember configuration: ClusterConfiguration) -> Int {
        encode(
            into: buffer, clusterID: configuration.clusterID, configurationDigest: configuration.configurationDigest,
            memberID: configuration.selfID)
    }
}
