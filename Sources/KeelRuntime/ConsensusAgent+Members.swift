import KeelCore
import KeelRaft
import KeelWire

// Member connections: the handshake (cluster id, member id, configuration digest), then Raft frames.
extension ConsensusAgent {
    func handleMemberFrame(_ message: WireMessage, on connection: PeerConnection) throws {
        if !connection.isEstablished {
            switch message {
            case .handshake(let frame): handshake(frame, on: connection)
            case .handshakeRefused(let frame):
                counters?.handshakesRefused.increment()
                reconnectAtNanos[connection.member ?? configuration.selfID] = nowNanos &+ 2_000_000_000
                close(connection, reason: "member \(connection.member?.rawValue ?? -1) refused the handshake: \(frame.mismatch): \(frame.detail)")
            default: close(connection, reason: "\(message.type) before the handshake")
            }
            return
        }
        guard let member = connection.member else { return }
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

    /// Checks a peer's handshake; answers an inbound one with ours or with a refusal naming the difference.
    private func handshake(_ frame: HandshakeFrame, on connection: PeerConnection) {
        let inbound = connection.kind == .memberInbound
        if let refusal = mismatch(frame, expectedMember: inbound ? nil : connection.member) {
            counters?.handshakesRefused.increment()
            if inbound {
                let detail = Array(refusal.detail.utf8.prefix(WireProtocol.maxDetailBytes))
                let length = detail.withUnsafeBytes { text in
                    HandshakeRefusedFrame.encode(into: scratch, mismatch: refusal.mismatch, expected: refusal.expected, actual: refusal.actual, detail: text)
                }
                enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
                connection.closeAfterFlush = true
                reportError(.handshake, "refused member handshake: \(refusal.detail)")
            } else {
                reconnectAtNanos[connection.member!] = nowNanos &+ 2_000_000_000
                close(connection, reason: "handshake from member \(connection.member!.rawValue) refused: \(refusal.detail)")
            }
            return
        }
        let member = frame.memberID
        if inbound {
            let length = HandshakeFrame.encode(into: scratch, clientOrMember: configuration)
            enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
            connection.member = member
        }
        // A newer connection from a member replaces an older one (the member restarted).
        if let old = peers[member], old !== connection { close(old, reason: "replaced by a new connection") }
        connection.isEstablished = true
        peers[member] = connection
        event("connected to member \(member.rawValue)")
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
