import KeelCore
import KeelExamples
import KeelRuntime
import KeelService
import KeelSimulation
import Testing

@Suite("Consensus and service agents on the simulator")
struct SimulatedClusterTests {
    @Test("a leader is elected, requests are committed on all three and applied in the same order, answered once each")
    func electsCommitsAndEchoes() throws {
        let cluster = try SimulatedClusterHarness(seed: 7)
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 }, "no leader within 5 s of virtual time")
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: 0)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.sessionID != nil }, "no session opened")
        for index in 0..<200 { client.request(Array("message \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 200 }, "only \(client.responses.count) echoes")
        #expect(client.responses.map(\.sequence) == Array(1...200))
        #expect(client.responses.last.map { String(decoding: $0.payload, as: UTF8.self) } == "message 199")
        // Every replica applies the same messages in the same order.
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members.allSatisfy { $0.service.service.messagesApplied == 200 } })
        let digests = Set(cluster.members.map { $0.service.service.digest })
        #expect(digests.count == 1)
        let commits = Set(cluster.members.map { $0.shared.commitPosition.load(ordering: .acquiring) })
        #expect(commits.count == 1)
    }

    @Test("the leader crashes: a new leader is elected, the client follows it, and both survivors apply everything")
    func leaderCrashFailsOver() throws {
        let cluster = try SimulatedClusterHarness(seed: 11)
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 })
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: 0)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.sessionID != nil })
        for index in 0..<50 { client.request(Array("before \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 50 })
        let oldLeader = cluster.leaders[0]
        let oldTerm = cluster.members[oldLeader].consensus.term
        cluster.crash(oldLeader)
        // 10× the maximum election timeout (600 ms) of virtual time.
        #expect(try cluster.run(maxRounds: 6_000, client: client) { cluster.leaders.count == 1 }, "no new leader")
        let newLeader = cluster.leaders[0]
        #expect(newLeader != oldLeader)
        #expect(cluster.members[newLeader].consensus.term > oldTerm)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.sessionID != nil && client.target == newLeader }, "client did not reopen a session on the new leader")
        for index in 0..<50 { client.request(Array("after \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 100 }, "only \(client.responses.count) echoes")
        let survivors = cluster.members.indices.filter { $0 != oldLeader }
        #expect(try cluster.run(maxRounds: 2_000) { survivors.allSatisfy { cluster.members[$0].service.service.messagesApplied == 100 } })
        #expect(Set(survivors.map { cluster.members[$0].service.service.digest }).count == 1)
    }
}
