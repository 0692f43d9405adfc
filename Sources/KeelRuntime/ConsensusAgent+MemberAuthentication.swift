import KeelCore
import KeelWire

// With a cluster secret (issue 8 §2), a member connection is established only after each side has
// proven it knows the secret, without sending it (`MemberProof`):
//
//   connecting member                                accepting member
//   handshake, nonce(c)              ─────────▶      checks the handshake
//                                    ◀─────────      handshake, nonce(a)
//                                    ◀─────────      proof(accepting) once it has nonce(c)
//   proof(connecting) once it has nonce(a) ───▶
//   verifies proof(accepting): established           verifies proof(connecting): established
//
// A peer with a wrong or missing secret is refused with a logged reason naming its address and
// member id; only its connection closes. An established connection is never replaced by one whose
// proof failed, so an impostor cannot cut a member off.
extension ConsensusAgent {
    /// Sends this side's nonce on a member connection, if the cluster has a secret.
    func sendNonceIfAuthenticating(on connection: PeerConnection) {
        guard configuration.clusterSecret != nil else { return }
        let authentication = connection.memberAuthentication ?? MemberAuthentication(localNonce: freshNonce())
        connection.memberAuthentication = authentication
        sendAuthentication(.nonce, authentication.localNonce, on: connection)
    }

    /// The peer's handshake passed the identity checks: the inbound side now sends its nonce.
    func handshakeAccepted(on connection: PeerConnection) {
        if connection.kind == .memberInbound { sendNonceIfAuthenticating(on: connection) }
        connection.memberAuthentication?.handshakeAccepted = true
    }

    /// A nonce or proof before the connection is established.
    func memberAuthentication(_ frame: MemberAuthenticationFrame, on connection: PeerConnection) {
        guard let secret = configuration.clusterSecret else {
            refuseSecret(on: connection, "presents a cluster secret, but this member has no --cluster-secret-file", peerHasSecret: true)
            return
        }
        guard var authentication = connection.memberAuthentication, authentication.handshakeAccepted,
              let member = connection.member
        else {
            close(connection, reason: "member-authentication before the handshake")
            return
        }
        switch frame.step {
        case .nonce:
            guard authentication.peerNonce == nil else {
                refuseSecret(on: connection, "sent a second nonce", peerHasSecret: true)
                return
            }
            let nonce = Array(frame.value)
            authentication.peerNonce = nonce
            connection.memberAuthentication = authentication
            let exchange = self.exchange(with: member, on: connection, local: authentication.localNonce, peer: nonce)
            let proof = MemberProof.compute(secret: secret, role: localRole(on: connection), exchange: exchange)
            sendAuthentication(.proof, proof, on: connection)
        case .proof:
            guard let nonce = authentication.peerNonce else {
                refuseSecret(on: connection, "sent its proof before its nonce", peerHasSecret: true)
                return
            }
            let exchange = self.exchange(with: member, on: connection, local: authentication.localNonce, peer: nonce)
            let peerRole: MemberProof.Role = localRole(on: connection) == .connecting ? .accepting : .connecting
            guard MemberProof.verify(frame.value, secret: secret, role: peerRole, exchange: exchange) else {
                refuseSecret(on: connection, "proved another cluster secret (its proof does not match this member's secret)", peerHasSecret: true)
                return
            }
            connection.memberAuthentication = nil
            establish(connection, member: member)
        }
    }

    /// Refuses a peer that did not prove the cluster secret: logged and counted, a refusal frame
    /// saying why sent, then the connection closed; the node carries on. Either end may refuse, so
    /// each side's log names the other.
    func refuseSecret(on connection: PeerConnection, _ what: String, peerHasSecret: Bool) {
        counters?.handshakesRefused.increment()
        let member = connection.member.map { "member \($0.rawValue)" } ?? "a member"
        let text = "refused \(member) at \(peerAddress(of: connection)): it \(what)"
        reportError(.handshake, text)
        if let member = connection.member, peers[member] === connection {
            // Established without a secret: no Raft frame goes out on it any more.
            peers.removeValue(forKey: member)
            connection.isEstablished = false
        }
        if connection.kind != .memberInbound, let member = connection.member { reconnectAtNanos[member] = nowNanos &+ 2_000_000_000 }
        let local: UInt64 = configuration.clusterSecret == nil ? 0 : 1
        refuse(connection, .clusterSecret, expected: local, actual: peerHasSecret ? 1 : 0, detail: text)
    }

    private func localRole(on connection: PeerConnection) -> MemberProof.Role {
        connection.kind == .memberInbound ? .accepting : .connecting
    }

    private func exchange(with member: MemberID, on connection: PeerConnection, local: [UInt8], peer: [UInt8]) -> MemberProof.Exchange {
        let connecting = localRole(on: connection) == .connecting
        return MemberProof.Exchange(
            clusterID: configuration.clusterID,
            connectingMember: connecting ? configuration.selfID : member, acceptingMember: connecting ? member : configuration.selfID,
            connectingNonce: connecting ? local : peer, acceptingNonce: connecting ? peer : local)
    }

    private func freshNonce() -> [UInt8] {
        var nonce: [UInt8] = []
        nonce.reserveCapacity(MemberProof.bytes)
        for _ in 0..<(MemberProof.bytes / 8) { withUnsafeBytes(of: nonceSource()) { nonce += $0 } }
        return nonce
    }

    private func sendAuthentication(_ step: MemberAuthenticationStep, _ value: [UInt8], on connection: PeerConnection) {
        let length = value.withUnsafeBytes { MemberAuthenticationFrame.encode(into: scratch, step: step, value: $0) }
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }
}
