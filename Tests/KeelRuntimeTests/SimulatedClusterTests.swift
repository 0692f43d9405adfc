import KeelCore
import KeelExamples
import KeelLog
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
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached }, "no session opened")
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
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached })
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
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached && client.target == newLeader }, "client did not reattach its session to the new leader")
        for index in 0..<50 { client.request(Array("after \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 100 }, "only \(client.responses.count) echoes")
        let survivors = cluster.members.indices.filter { $0 != oldLeader }
        #expect(try cluster.run(maxRounds: 2_000) { survivors.allSatisfy { cluster.members[$0].service.service.messagesApplied == 100 } })
        #expect(Set(survivors.map { cluster.members[$0].service.service.digest }).count == 1)
    }

    @Test("a leader crashes holding entries no one else has; the new leader commits more; the old one restarts on its disk, drops them and converges")
    func crashedLeaderWithUncommittedSuffixRejoinsAndConverges() throws {
        let cluster = try SimulatedClusterHarness(seed: 23)
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 })
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: 0)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached })
        for index in 0..<50 { client.request(Array("before \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 50 })

        // The leader's links to the followers go silent: it keeps appending requests that no one
        // else receives, then crashes with them in its log (a process crash keeps the page cache).
        let oldLeader = cluster.leaders[0]
        let old = cluster.members[oldLeader]
        let oldTerm = old.consensus.term
        let appendedBefore = old.consensus.log.appendedPosition
        for other in cluster.members.indices where other != oldLeader {
            cluster.network.blockLink(from: cluster.endpoints[oldLeader].host, to: cluster.endpoints[other].host)
        }
        for index in 0..<40 { client.request(Array("lost \(index) ".utf8) + Array(repeating: 0x6C, count: 2_000)) }
        #expect(try cluster.run(maxRounds: 100, client: client) { old.consensus.log.appendedPosition.bytes(since: appendedBefore) > 40 * 2_000 })
        let oldEnd = old.consensus.log.appendedPosition
        #expect(old.consensus.commitPosition <= appendedBefore, "the cut-off entries must stay uncommitted")
        cluster.crash(oldLeader)
        cluster.network.healAll()

        // A new leader commits more in a higher term, over the positions the old leader's suffix holds.
        #expect(try cluster.run(maxRounds: 6_000, client: client) { cluster.leaders.count == 1 }, "no new leader")
        let newLeader = cluster.leaders[0]
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached && client.target == newLeader })
        // Exactly-once: the client resends the 40 requests the old leader alone held; they are applied once.
        for index in 0..<60 { client.request(Array("after \(index) ".utf8) + Array(repeating: 0x61, count: 2_000)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 150 }, "only \(client.responses.count) echoes")
        let leaderLog = cluster.members[newLeader].consensus.log
        let newTermStart = try #require(leaderLog.startOfTerm(cluster.members[newLeader].consensus.term))
        #expect(newTermStart < oldEnd && leaderLog.appendedPosition > oldEnd, "the new term must overwrite the old leader's suffix")

        // The old leader restarts on its disk with the conflicting suffix, and must converge.
        try cluster.restart(oldLeader)
        let restarted = cluster.members[oldLeader]
        #expect(restarted.consensus.log.appendedPosition == oldEnd)
        #expect(restarted.consensus.log.term(before: oldEnd) == oldTerm)
        for index in 0..<20 { client.request(Array("rejoined \(index)".utf8)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 170 })
        let converged = try cluster.run(maxRounds: 3_000) {
            let commits = Set(cluster.members.map { $0.shared.commitPosition.load(ordering: .acquiring) })
            let appends = Set(cluster.members.map { $0.consensus.log.appendedPosition })
            return commits.count == 1 && appends.count == 1 && cluster.members.allSatisfy { $0.service.service.messagesApplied == 170 }
        }
        let positions = cluster.members.map { ($0.consensus.commitPosition.rawValue, $0.consensus.log.appendedPosition.rawValue) }
        #expect(converged, "commit and append positions \(positions)\n\(cluster.events.suffix(20).joined(separator: "\n"))")
        #expect(cluster.events.contains { $0.contains("m\(oldLeader) log truncated from \(newTermStart.rawValue)") }, "the suffix was not truncated")
        // Every member holds the same committed entries (the durable-position field is each member's own).
        let commit = LogPosition(cluster.members[newLeader].shared.commitPosition.load(ordering: .acquiring))
        let logs = cluster.members.map { committedEntries(of: $0.consensus.log, upTo: commit) }
        #expect(logs[0].count > 170 && logs[0] == logs[1] && logs[1] == logs[2])
        // Each "lost" request is in the committed log once: resent by the client, not kept from the old suffix.
        for index in 0..<40 {
            let prefix = Array("lost \(index) ".utf8)
            #expect(logs[oldLeader].filter { $0.payload.starts(with: prefix) }.count == 1, "lost \(index)")
        }
        #expect(Set(client.responses.map(\.sequence)).count == 170, "every request answered once")
        #expect(Set(cluster.members.map { $0.service.service.digest }).count == 1)
    }

    struct CommittedEntry: Equatable {
        var position: LogPosition
        var term: Term
        var type: LogEntryType
        var sessionID: Int64
        var correlationID: Int64
        var timestamp: ClusterTime
        var payload: [UInt8]
    }

    func committedEntries<S: Storage>(of log: ReplicatedLog<S>, upTo commit: LogPosition) -> [CommittedEntry] {
        var entries: [CommittedEntry] = []
        log.reader.forEachFrame(from: log.startPosition, limit: commit) { frame in
            entries.append(CommittedEntry(
                position: frame.position, term: frame.term, type: frame.type, sessionID: frame.sessionID,
                correlationID: frame.correlationID, timestamp: frame.timestamp, payload: Array(frame.payload)))
            return true
        }
        return entries
    }
}
