import KeelCore
import KeelExamples
import KeelLog
import KeelRuntime
import KeelService
import KeelSimulation
import KeelWire
import Testing

/// The cluster-wide commands (issue 10 §3) on the simulator: suspend / resume and shutdown as log
/// entries, leadership transfer through the core's TimeoutNow.
@Suite("Cluster-wide commands on the simulator")
struct ClusterControlSimulationTests {
    func started(seed: UInt64) throws -> (SimulatedClusterHarness<EchoService>, SimulatedTestClient) {
        let cluster = try SimulatedClusterHarness(seed: seed)
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 }, "no leader")
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: 0)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached }, "no session")
        return (cluster, client)
    }

    func applied(_ cluster: SimulatedClusterHarness<EchoService>, _ index: Int) -> Int64 { cluster.members[index].service.service.messagesApplied }

    @Test("suspend: committed on every member, requests refused (retryable, not applied) and the state survives a leader crash; resume: the same requests are applied once each")
    func suspendSurvivesLeaderChangeAndResumes() throws {
        let (cluster, client) = try started(seed: 31)
        for index in 0..<20 { client.request(Array("before \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 20 })

        client.admin(.suspend)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { !client.adminAnswers.isEmpty })
        #expect(client.adminAnswers.first?.status == .ok, "\(client.adminAnswers)")
        #expect(client.adminAnswers.first?.text.contains("suspended at log position") == true)
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members.allSatisfy { $0.service.suspended && $0.shared.suspended.load(ordering: .acquiring) } })

        for index in 0..<10 { client.request(Array("while suspended \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 2_000, client: client) { client.rejections.count >= 10 })
        #expect(client.rejections.allSatisfy { $0.reason == .clusterSuspended }, "\(client.rejections)")
        #expect(client.responses.count == 20)
        #expect(cluster.members.indices.allSatisfy { applied(cluster, $0) == 20 })

        // A new leader knows it too: the state is replicated, not the old leader's.
        let oldLeader = cluster.leaders[0]
        cluster.crash(oldLeader)
        #expect(try cluster.run(maxRounds: 6_000, client: client) { cluster.leaders.count == 1 && client.attached && client.target == cluster.leaders[0] })
        client.rejections.removeAll()
        client.resendUnanswered()
        #expect(try cluster.run(maxRounds: 2_000, client: client) { client.rejections.count >= 10 }, "the new leader did not refuse: \(client.rejections)")
        #expect(client.responses.count == 20)

        client.adminAnswers.removeAll()
        client.admin(.resume)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { !client.adminAnswers.isEmpty })
        #expect(client.adminAnswers.first?.status == .ok, "\(client.adminAnswers)")
        client.resendUnanswered()
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 30 }, "only \(client.responses.count) answers after resume")
        #expect(client.responses.map(\.sequence) == Array(1...30), "answers out of order or twice")
        let survivors = cluster.members.indices.filter { $0 != oldLeader }
        #expect(try cluster.run(maxRounds: 2_000) { survivors.allSatisfy { applied(cluster, $0) == 30 && !cluster.members[$0].service.suspended } })
        #expect(Set(survivors.map { cluster.members[$0].service.service.digest }).count == 1)
    }

    @Test("transfer-leadership: the target leads within a fraction of the election timeout, requests sent during the transfer are each applied once, a non-member target is refused")
    func transferUnderLoad() throws {
        let (cluster, client) = try started(seed: 43)
        let leader = cluster.leaders[0]
        let target = (leader + 1) % 3
        let term = cluster.members[leader].consensus.term
        client.admin(.transferLeadership, body: withUnsafeBytes(of: Int32(9).littleEndian) { Array($0) })
        #expect(try cluster.run(maxRounds: 1_000, client: client) { !client.adminAnswers.isEmpty })
        #expect(client.adminAnswers.first?.status == .failed)
        #expect(client.adminAnswers.first?.text.contains("not in the cluster") == true, "\(client.adminAnswers)")

        for index in 0..<100 { client.request(Array("load \(index)".utf8)) }
        try cluster.round(client: client)
        client.admin(.transferLeadership, body: withUnsafeBytes(of: Int32(target).littleEndian) { Array($0) })
        for index in 100..<200 { client.request(Array("load \(index)".utf8)) }
        // Well under the minimum election timeout (300 ms): no timeout was waited for.
        #expect(try cluster.run(maxRounds: 150, client: client) { cluster.leaders == [target] }, "leaders \(cluster.leaders) after 150 ms")
        #expect(cluster.members[target].consensus.term.rawValue == term.rawValue + 1)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 200 }, "only \(client.responses.count) answers")
        #expect(Set(client.responses.map(\.sequence)) == Set(1...200), "a request lost or answered twice")
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members.indices.allSatisfy { applied(cluster, $0) == 200 } })
        #expect(Set(cluster.members.map { $0.service.service.digest }).count == 1)
    }

    @Test("shutdown: every member applies the entry at the same position, nothing follows it in any log, and each may exit")
    func shutdownStopsEveryMember() throws {
        let (cluster, client) = try started(seed: 57)
        for index in 0..<30 { client.request(Array("before \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 30 })
        client.admin(.shutdown)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { !client.adminAnswers.isEmpty })
        #expect(client.adminAnswers.first?.status == .ok, "\(client.adminAnswers)")
        for index in 0..<5 { client.request(Array("after \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 3_000, client: client) { cluster.members.allSatisfy { $0.shared.exitRequested.load(ordering: .acquiring) } })
        let positions = Set(cluster.members.map { $0.shared.shutdownPosition.load(ordering: .acquiring) })
        #expect(positions.count == 1 && positions.first! > 0, "\(positions)")
        #expect(cluster.members.allSatisfy { $0.consensus.log.appendedPosition.rawValue == positions.first! }, "entries after the shutdown")
        #expect(client.rejections.allSatisfy { $0.reason == .shuttingDown })
        #expect(cluster.members.indices.allSatisfy { applied(cluster, $0) == 30 })
    }
}
