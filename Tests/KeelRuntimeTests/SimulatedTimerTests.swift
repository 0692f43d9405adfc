import KeelCore
import KeelRuntime
import KeelService
import KeelSimulation
import Testing

/// A service driven by requests `| op u8 | id i64 | delay ns i64 |` (op 1 schedules id at
/// now + delay, 2 cancels it); it records every timer it sees fire and fails loudly on an early,
/// unknown or repeated one.
struct TimerProbeService: ClusteredService {
    struct Fired: Equatable { var id: Int64; var timestamp: ClusterTime; var position: LogPosition }
    var cluster: Cluster?
    /// Deadlines of the timers this replica expects pending.
    var expected: [Int64: ClusterTime] = [:]
    var fired: [Fired] = []
    var problems: [String] = []

    mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws { self.cluster = cluster }
    mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {}
    mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {}
    mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {}

    mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        guard message.count == 17, let cluster else { return }
        let id = message.loadUnaligned(fromByteOffset: 1, as: Int64.self)
        let delay = message.loadUnaligned(fromByteOffset: 9, as: Int64.self)
        if message[0] == 1 {
            let deadline = ClusterTime(rawValue: timestamp.rawValue + delay)
            cluster.scheduleTimer(correlationId: id, deadline: deadline)
            expected[id] = deadline
        } else {
            let wasPending = cluster.cancelTimer(correlationId: id)
            if wasPending != (expected.removeValue(forKey: id) != nil) { problems.append("cancel of \(id) answered \(wasPending)") }
        }
        session.offer([1])
    }

    mutating func onTimerEvent(correlationId: Int64, timestamp: ClusterTime) {
        guard let deadline = expected.removeValue(forKey: correlationId) else {
            problems.append("timer \(correlationId) fired but is not pending (cancelled, or fired before)")
            return
        }
        if timestamp < deadline { problems.append("timer \(correlationId) fired at \(timestamp), before its deadline \(deadline)") }
        if cluster?.time != timestamp { problems.append("Cluster.time differs from the event's timestamp") }
        fired.append(Fired(id: correlationId, timestamp: timestamp, position: cluster?.logPosition ?? .zero))
    }

    static func request(_ op: UInt8, id: Int64, delayNanos: Int64 = 0) -> [UInt8] {
        var bytes = [op]
        withUnsafeBytes(of: id) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: delayNanos) { bytes.append(contentsOf: $0) }
        return bytes
    }
}

@Suite("Sequenced timers on the simulator")
struct SimulatedTimerTests {
    typealias Harness = SimulatedClusterHarness<TimerProbeService>

    func startedCluster(seed: UInt64) throws -> (Harness, SimulatedTestClient) {
        let cluster = try Harness(seed: seed) { _ in TimerProbeService() }
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 }, "no leader")
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: 0)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.sessionID != nil }, "no session")
        return (cluster, client)
    }

    func services(_ cluster: Harness, _ indices: [Int]? = nil) -> [TimerProbeService] {
        (indices ?? Array(cluster.members.indices)).map { cluster.members[$0].service.service }
    }

    @Test("a timer fires on an idle cluster — no client traffic after the request that scheduled it — once, at the same position on every replica, not early")
    func firesWithoutTraffic() throws {
        let (cluster, client) = try startedCluster(seed: 5)
        client.request(TimerProbeService.request(1, id: 42, delayNanos: 3_000_000_000))
        #expect(try cluster.run(maxRounds: 2_000, client: client) { client.responses.count == 1 })
        // The client goes away entirely: nothing but the cluster's own duty cycles from here.
        if let connection = client.connection { client.transport.close(connection) }
        let scheduledAt = cluster.time.nowNanos
        #expect(try cluster.run(maxRounds: 6_000) { services(cluster).allSatisfy { $0.fired.count == 1 } }, "the timer did not fire on every replica")
        let fired = services(cluster).map(\.fired)
        #expect(Set(fired.map { $0[0].position.rawValue }).count == 1, "the same log position on every replica")
        #expect(fired[0][0].id == 42)
        #expect(cluster.time.nowNanos - scheduledAt >= 2_900_000_000, "fired after about the 3 s delay of virtual time, not before")
        #expect(services(cluster).allSatisfy { $0.problems.isEmpty }, "\(services(cluster).flatMap(\.problems))")
        _ = try cluster.run(maxRounds: 2_000) { false }
        #expect(services(cluster).allSatisfy { $0.fired.count == 1 }, "never twice")
    }

    @Test("cancelled timers never fire; rescheduled ones fire once at their new deadline; 2,000 timers fire in deadline order")
    func cancelRescheduleAndMany() throws {
        let (cluster, client) = try startedCluster(seed: 9)
        for id in 0..<2_000 { client.request(TimerProbeService.request(1, id: Int64(id), delayNanos: Int64((id * 7_919) % 1_000) * 1_000_000)) }
        for id in stride(from: 0, to: 2_000, by: 10) { client.request(TimerProbeService.request(2, id: Int64(id))) }
        for id in stride(from: 5, to: 2_000, by: 10) { client.request(TimerProbeService.request(1, id: Int64(id), delayNanos: 1_500_000_000)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 2_400 })
        #expect(try cluster.run(maxRounds: 5_000) { services(cluster).allSatisfy { $0.fired.count == 1_800 } }, "fired: \(services(cluster).map(\.fired.count))")
        _ = try cluster.run(maxRounds: 1_000) { false }
        let all = services(cluster)
        #expect(all.allSatisfy { $0.problems.isEmpty }, "\(all.flatMap(\.problems).prefix(5))")
        #expect(all.allSatisfy { $0.fired == all[0].fired }, "every replica fires the same timers at the same positions and times")
        let ids = Set(all[0].fired.map(\.id))
        #expect(ids.count == 1_800 && !ids.contains(0) && !ids.contains(1_990))
        #expect(all[0].fired.filter { $0.id % 10 == 5 }.allSatisfy { $0.timestamp.rawValue >= all[0].fired[0].timestamp.rawValue + 400_000_000 })
        for pair in zip(all[0].fired, all[0].fired.dropFirst()) {
            #expect(pair.0.position <= pair.1.position && pair.0.timestamp <= pair.1.timestamp)
        }
        #expect(cluster.members.allSatisfy { $0.service.timers.count == 0 })
    }

    @Test("the leader crashes with timers pending and some fired: the new leader fires the rest, each exactly once; the old leader restarts and agrees")
    func leaderChangeFiresTheRestOnce() throws {
        let (cluster, client) = try startedCluster(seed: 13)
        for id in 0..<300 { client.request(TimerProbeService.request(1, id: Int64(id), delayNanos: Int64(id) * 5_000_000)) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == 300 })
        let oldLeader = cluster.leaders[0]
        #expect(try cluster.run(maxRounds: 5_000) { cluster.members[oldLeader].service.service.fired.count >= 100 })
        cluster.crash(oldLeader)
        #expect(try cluster.run(maxRounds: 6_000) { cluster.leaders.count == 1 }, "no new leader")
        let survivors = cluster.members.indices.filter { $0 != oldLeader }
        #expect(try cluster.run(maxRounds: 5_000) { services(cluster, survivors).allSatisfy { $0.fired.count == 300 } }, "fired: \(services(cluster, survivors).map(\.fired.count))")
        try cluster.restart(oldLeader)
        #expect(try cluster.run(maxRounds: 5_000) { services(cluster).allSatisfy { $0.fired.count == 300 } })
        _ = try cluster.run(maxRounds: 1_000) { false }
        let all = services(cluster)
        #expect(all.allSatisfy { $0.problems.isEmpty }, "\(all.flatMap(\.problems).prefix(5))")
        #expect(all.allSatisfy { $0.fired == all[0].fired })
        #expect(Set(all[0].fired.map(\.id)).count == 300)
    }
}
