import KeelCore
import KeelRuntime
import Testing

/// Member-to-member authentication with the cluster secret (issue 8 §2): the HMAC exchange itself,
/// then three simulated members with right, wrong and missing secrets.
@Suite struct MemberProofTests {
    let secret = Array("correct horse battery staple".utf8)

    func exchange(connectingNonce: UInt8 = 1, acceptingNonce: UInt8 = 2) -> MemberProof.Exchange {
        MemberProof.Exchange(
            clusterID: 0x1234, connectingMember: MemberID(0), acceptingMember: MemberID(2),
            connectingNonce: [UInt8](repeating: connectingNonce, count: 32), acceptingNonce: [UInt8](repeating: acceptingNonce, count: 32))
    }

    /// RFC 4231 test case 2: libcrypto's HMAC-SHA256 is wired the right way round (key, message).
    @Test func hmacMatchesRFC4231() {
        let mac = MemberProof.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8))
        let hex = mac.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
        #expect(hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test func theRightSecretIsAccepted() {
        let proof = MemberProof.compute(secret: secret, role: .connecting, exchange: exchange())
        #expect(proof.count == 32)
        #expect(proof.withUnsafeBytes { MemberProof.verify($0, secret: secret, role: .connecting, exchange: exchange()) })
    }

    @Test func aWrongSecretIsRejected() {
        let proof = MemberProof.compute(secret: Array("correct horse battery stapler".utf8), role: .connecting, exchange: exchange())
        #expect(!proof.withUnsafeBytes { MemberProof.verify($0, secret: secret, role: .connecting, exchange: exchange()) })
    }

    /// A proof recorded on one connection fails on the next: the verifier's nonce is fresh.
    @Test func aReplayedProofIsRejected() {
        let recorded = MemberProof.compute(secret: secret, role: .connecting, exchange: exchange(acceptingNonce: 2))
        #expect(!recorded.withUnsafeBytes { MemberProof.verify($0, secret: secret, role: .connecting, exchange: exchange(acceptingNonce: 3)) })
        let recordedAccepting = MemberProof.compute(secret: secret, role: .accepting, exchange: exchange(connectingNonce: 1))
        #expect(!recordedAccepting.withUnsafeBytes {
            MemberProof.verify($0, secret: secret, role: .accepting, exchange: exchange(connectingNonce: 4))
        })
    }

    /// The accepting side's proof cannot be sent back as the connecting side's (reflection).
    @Test func aReflectedProofIsRejected() {
        let accepting = MemberProof.compute(secret: secret, role: .accepting, exchange: exchange())
        #expect(!accepting.withUnsafeBytes { MemberProof.verify($0, secret: secret, role: .connecting, exchange: exchange()) })
    }

    /// Every identity field is covered: another cluster or member pair gets another proof.
    @Test func theProofCoversTheClusterAndBothMembers() {
        let base = MemberProof.compute(secret: secret, role: .connecting, exchange: exchange())
        var otherCluster = exchange()
        otherCluster.clusterID = 0x1235
        var otherMember = exchange()
        otherMember.acceptingMember = MemberID(1)
        #expect(MemberProof.compute(secret: secret, role: .connecting, exchange: otherCluster) != base)
        #expect(MemberProof.compute(secret: secret, role: .connecting, exchange: otherMember) != base)
        #expect(!Array(base.prefix(31)).withUnsafeBytes { MemberProof.verify($0, secret: secret, role: .connecting, exchange: exchange()) })
    }
}

@Suite struct SimulatedMemberAuthenticationTests {
    let secret = Array("cluster secret".utf8)

    @Test func membersWithTheSameSecretElectAndServe() throws {
        let cluster = try SimulatedClusterHarness(seed: 41, clusterSecrets: [secret, secret, secret])
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 }, "no leader within 5 s of virtual time")
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: 0)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached }, "no session opened")
        for index in 0..<20 { client.request(Array("message \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 20 })
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members.allSatisfy { $0.service.service.messagesApplied == 20 } },
                "every member applies: every member connection was authenticated")
        #expect(!cluster.events.contains { $0.contains("refused") }, "\(cluster.events.filter { $0.contains("refused") })")
    }

    @Test func aMemberWithAWrongSecretIsRefusedAndTheOthersServe() throws {
        let cluster = try SimulatedClusterHarness(seed: 43, clusterSecrets: [secret, secret, Array("another secret".utf8)])
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 }, "no leader among members 0 and 1")
        #expect(cluster.leaders != [2])
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: cluster.leaders[0])
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached }, "no session opened")
        for index in 0..<20 { client.request(Array("message \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 20 })
        _ = try cluster.run(maxRounds: 1_000) { false }
        #expect(cluster.members[2].service.service.messagesApplied == 0, "member 2 got log entries without the secret")
        // Both ends say who and why: member 0 connects out to member 2 (lower ids connect to higher).
        let refusals = cluster.events.filter { $0.contains("cluster secret") }
        #expect(refusals.contains { $0.contains("m0 refused member 2 at 10.0.0.3:9010") && $0.contains("proof does not match") }, "\(refusals)")
        // Member 2 checks member 0's proof too (sent before member 0 saw member 2's) and says why.
        #expect(refusals.contains { $0.contains("m2 refused member 0 at 10.0.0.1") && $0.contains("proof does not match") }, "\(refusals)")
        #expect(cluster.members[0].consensus.term == cluster.members[1].consensus.term)
    }

    @Test func aMemberWithoutTheSecretIsRefused() throws {
        let cluster = try SimulatedClusterHarness(seed: 47, clusterSecrets: [nil, secret, secret])
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 }, "no leader among members 1 and 2")
        #expect(cluster.leaders != [0])
        _ = try cluster.run(maxRounds: 1_000) { false }
        let refusals = cluster.events.filter { $0.contains("cluster-secret") || $0.contains("cluster secret") }
        // Member 0 connects out without a secret: members 1 and 2 refuse it, and it says why too.
        #expect(refusals.contains { $0.contains("m1 member 0 at 10.0.0.1") && $0.contains("refused the handshake: cluster secret not proven") }, "\(refusals)")
        #expect(refusals.contains { $0.contains("m0 refused member 1") && $0.contains("has no --cluster-secret-file") }, "\(refusals)")
    }
}
