import KeelCore
import KeelRaft
import KeelWire

// Member connections: the handshake (cluster id, member id, configuration digest), with a cluster
// secret the proof of it (ConsensusAgent+MemberAuthentication.swift), then Raft frames.
extension ConsensusAgent {
    func handleMemberFrame(_ message: WireMessage, on connection: PeerConnection) throws {
        // Refused: the refusal is on its way out, and nothing more from the peer matters.
        guard !connection.closeAfterFlush else { return }
        if !connection.isEstablished {
            switch message {
            case .handshake(let frame): handshake(frame, on: connection)
            case .handshakeRefused(let frame):
                counters?.handshakesRefused.increment()
                reconnectAtNanos[connection.member ?? configuration.selfID] = nowNanos &+ 2_000_000_000
                let text = "member \(connection.member?.rawValue ?? -1) at \(peerAddress(of: connection)) refused the handshake: \(frame.mismatch): \(frame.detail)"
                if frame.mismatch == .clusterSecret { reportError(.handshake, text) }
                close(connection, reason: text)
            case .memberAuthentication(let frame): memberAuthentication(frame, on: connection)
            default:
                if let authentication = connection.memberAuthentication, authentication.handshakeAccepted {
                    refuseSecret(on: connection, "sent \(message.type) without proving the cluster secret (it has no --cluster-secret-file?)",
                                 peerHasSecret: false)
                } else {
                    close(connection, reason: "\(message.type) before the handshake")
                }
            }
            return
        }
        guard let member = connection.member else { return }
        if case .memberAuthentication = message, configuration.clusterSecret == nil {
            // Established without a proof: this member has no secret, the peer has one.
            refuseSecret(on: connection, "presents a cluster secret, but this member has no --cluster-secret-file", peerHasSecret: true)
            return
        }
        if try handleSnapshotFrame(message, from: member, on: connection) { return }
        guard let raft = RaftWireCodec.decode(message) else {
            close(connection, reason: "unexpected \(message.type) from member \(member.rawValue)")
            return
        }
        guard case .appendEntries(let frame) = message, case .appendEntries(let append) = raft.body else {
            try step(.message(from: member, raft))
            return
        }
        try stepAppend(append, term: raft.term, bytes: frame.logBytes, from: member)
    }

    /// Checks a peer's handshake; answers an inbound one with ours or with a refusal naming the
    /// difference. With a cluster secret, the connection is established only once the peer's proof
    /// is verified (`memberAuthentication(_:on:)`).
    private func handshake(_ frame: HandshakeFrame, on connection: PeerConnection) {
        let inbound = connection.kind == .memberInbound
        if let refusal = mismatch(frame, expectedMember: inbound ? nil : connection.member) {
            counters?.handshakesRefused.increment()
            if inbound {
                refuse(connection, refusal.mismatch, expected: refusal.expected, actual: refusal.actual, detail: refusal.detail)
                reportError(.handshake, "refused member handshake from \(peerAddress(of: connection)): \(refusal.detail)")
            } else {
                reconnectAtNanos[connection.member!] = nowNanos &+ 2_000_000_000
                close(connection, reason: "handshake from member \(connection.member!.rawValue) refused: \(refusal.detail)")
            }
            return
        }
        let member = frame.memberID
        if inbound {
            guard connection.member == nil else {
                close(connection, reason: "a second handshake from member \(member.rawValue)")
                return
            }
            let length = HandshakeFrame.encode(into: scratch, clientOrMember: configuration)
            enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            connection.member = member
        }
        if configuration.clusterSecret != nil {
            handshakeAccepted(on: connection)
            return
        }
        establish(connection, member: member)
    }

    /// Raft frames may flow on `connection` from now on.
    func establish(_ connection: PeerConnection, member: MemberID) {
        // A newer connection from a member replaces an older one (the member restarted).
        if let old = peers[member], old !== connection { close(old, reason: "replaced by a new connection") }
        connection.isEstablished = true
        peers[member] = connection
        event("connected to member \(member.rawValue)")
    }

    /// Sends a handshake refusal and closes the connection once that is sent.
    func refuse(_ connection: PeerConnection, _ mismatch: HandshakeMismatch, expected: UInt64, actual: UInt64, detail: String) {
        let bytes = Array(detail.utf8.prefix(WireProtocol.maxDetailBytes)).map { $0 < 0x20 || $0 == 0x7F ? 0x20 : $0 }
        let length = bytes.withUnsafeBytes { text in
            HandshakeRefusedFrame.encode(into: scratch, mismatch: mismatch, expected: expected, actual: actual, detail: text)
        }
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
        connection.closeAfterFlush = true
    }

    /// `host:port` of the other end, for messages.
    func peerAddress(of connection: PeerConnection) -> String {
        if case .memberOutbound(let member) = connection.kind, let endpoint = configuration.endpoint(of: member) {
            let route = configuration.memberRoutes[member] ?? (endpoint.host, endpoint.memberPort)
            return "\(route.host):\(route.port)"
        }
        return transport.peerAddress(connection.id) ?? "an unknown address"
    }

    private struct Refusal {
        var mismatch: HandshakeMismatch
        var expected: UInt64
        var actual: UInt64
        var detail: String
    }

    private func mismatch(_ frame: HandshakeFrame, expectedMember: MemberID?) -> Refusal? {
        let me = configuration.selfID.rawValue
        if frame.protocolVersion != UInt16(WireProtocol.version) {
            return Refusal(mismatch: .protocolVersion, expected: UInt64(WireProtocol.version), actual: UInt64(frame.protocolVersion),
                           detail: "member \(me) speaks protocol \(WireProtocol.version), the peer \(frame.protocolVersion)")
        }
        if frame.clusterID != configuration.clusterID {
            return Refusal(mismatch: .clusterID, expected: configuration.clusterID, actual: frame.clusterID,
                           detail: "member \(me) belongs to cluster '\(configuration.clusterName)' (id \(configuration.clusterID)), the peer to cluster id \(frame.clusterID)")
        }
        let member = frame.memberID
        if member == configuration.selfID {
            return Refusal(mismatch: .duplicateMember, expected: UInt64(me), actual: UInt64(member.rawValue),
                           detail: "the peer claims member id \(member.rawValue), which is this member's own")
        }
        if configuration.endpoint(of: member) == nil || (expectedMember != nil && expectedMember != member) {
            return Refusal(mismatch: .unknownMember, expected: UInt64(expectedMember?.rawValue ?? -1), actual: UInt64(member.rawValue),
                           detail: "member \(member.rawValue) is not the expected member in \(configuration.canonicalDescription)")
        }
        if frame.configurationDigest != configuration.configurationDigest {
            return Refusal(mismatch: .configurationDigest, expected: configuration.configurationDigest, actual: frame.configurationDigest,
                           detail: "member \(me) runs \(configuration.canonicalDescription); member \(member.rawValue) runs another member list or sync mode")
        }
        return nil
    }

    /// Encodes a Raft message to `member`'s send queue. AppendEntries carry the log bytes read from
    /// the mapped log, copied once into the queue. Dropped when the member is not connected or its
    /// queue is full: the core retransmits what is not acknowledged.
    func send(_ message: RaftMessage, to member: MemberID) {
        guard let connection = peers[member], !connection.isClosed else { return }
        if case .appendEntries(let append) = message.body {
            sendAppend(append, term: message.term, on: connection)
            return
        }
        let length = RaftWireCodec.encode(message, into: scratch)
        guard length > 0 else { return }
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }

    private func sendAppend(_ append: AppendEntries, term: Term, on connection: PeerConnection) {
        let byteCount = Int(append.byteCount)
        guard connection.sendQueue.freeBytes >= AppendEntriesFrame.fixedBytes + byteCount else {
            counters?.backPressureEvents.increment()
            return
        }
        AppendEntriesFrame.encodeHeader(
            into: scratch, term: term, prevPosition: append.prevPosition, prevTerm: append.prevTerm,
            endPosition: append.endPosition, entryTerm: append.entryTerm, leaderCommit: append.leaderCommit)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<AppendEntriesFrame.fixedBytes]), on: connection)
        guard byteCount > 0 else { return }
        log.reader.withRawBytes(from: append.prevPosition, to: append.endPosition) { piece in
            _ = connection.sendQueue.offer(piece, nowNanos: nowNanos)
        }
    }
}
