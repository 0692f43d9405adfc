import Glibc
import KeelClient
import KeelCore
import KeelExamples
import KeelIO
import Testing

/// Sends `requests` pipelined (a bounded window) and returns the answers in order; `during` runs
/// once per loop with the number answered so far (e.g. to kill the leader).
func sendAll(
    _ client: ClusterClient<SystemClock>, _ requests: [[UInt8]], seconds: Int64 = 120, window: Int = 32, during: (Int) -> Void = { _ in }
) throws -> [[UInt8]] {
    let clock = SystemClock(), deadline = clock.monotonicNanos() + seconds * 1_000_000_000
    var offered = 0
    var answers: [[UInt8]] = []
    while answers.count < requests.count && clock.monotonicNanos() < deadline {
        while offered < requests.count && offered - answers.count < window, case .accepted = client.offer(requests[offered]) { offered += 1 }
        try client.poll(waitingUpToNanos: 1_000_000) { answers.append(Array($0.payload)) }
        during(answers.count)
    }
    #expect(answers.count == requests.count, "only \(answers.count) of \(requests.count) answers within \(seconds) s")
    return answers
}

@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct ExampleServiceProcessTests {
    /// Kills the leader once `answered` passes each of `at`, restarting the previous victim first.
    final class LeaderKiller {
        let cluster: NodeCluster
        let client: ClusterClient<SystemClock>
        var thresholds: [Int]
        var victims: [Int32] = []
        init(_ cluster: NodeCluster, _ client: ClusterClient<SystemClock>, at thresholds: [Int]) {
            self.cluster = cluster
            self.client = client
            self.thresholds = thresholds
        }
        func check(_ answered: Int) {
            guard let next = thresholds.first, answered >= next, let leader = client.leaderMemberID?.rawValue else { return }
            thresholds.removeFirst()
            if let previous = victims.last, !cluster.isRunning(previous) { try? cluster.start(previous) }
            cluster.kill9(leader)
            victims.append(leader)
        }
    }

    @Test("kv on real processes: keys written through two leader kills all read back; compare-and-set and malformed bytes answer as documented", .timeLimit(.minutes(4)))
    func keyValueSurvivesLeaderKills() throws {
        let cluster = try NodeCluster(service: "kv")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        let count = 3_000
        let puts = (0..<count).map { KeyValueRequest.put(key: Array("key-\($0)".utf8), value: Array("value-\($0)".utf8)).encoded() }
        let killer = LeaderKiller(cluster, client, at: [count / 3, 2 * count / 3])
        let putAnswers = try sendAll(client, puts, seconds: 180, during: killer.check)
        #expect(killer.victims.count == 2, "leaders killed: \(killer.victims)")
        #expect(putAnswers.allSatisfy { (try? KeyValueResponse.decode($0).status) == .ok })
        let gets = (0..<count).map { KeyValueRequest.get(key: Array("key-\($0)".utf8)).encoded() }
        let values = try sendAll(client, gets).map { try KeyValueResponse.decode($0) }
        #expect(values.count == count)
        let wrong = values.indices.filter { values[$0] != KeyValueResponse(status: .ok, value: Array("value-\($0)".utf8)) }
        #expect(wrong.isEmpty, "\(wrong.count) keys lost or wrong, first: \(wrong.first.map { "key-\($0)" } ?? "")")
        let more = try sendAll(client, [
            KeyValueRequest.compareAndSet(key: Array("key-1".utf8), expected: Array("value-1".utf8), new: Array("changed".utf8)).encoded(),
            KeyValueRequest.compareAndSet(key: Array("key-1".utf8), expected: Array("value-1".utf8), new: Array("again".utf8)).encoded(),
            [4, 1],
            KeyValueRequest.get(key: Array("key-1".utf8)).encoded(),
        ]).map { try KeyValueResponse.decode($0) }
        #expect(more.map(\.status) == [.ok, .mismatch, .malformed, .ok])
        #expect(more.last?.value == Array("changed".utf8), "the malformed request changed nothing")
    }

    @Test("bank on real processes: random transfers and expiring holds through three leader kills; the total money is conserved and no account overdraws", .timeLimit(.minutes(4)))
    func bankConservesMoneyThroughLeaderKills() throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        let accounts: [Int64] = Array(1...20)
        let setup = accounts.flatMap { [BankRequest.open(account: $0).encoded(), BankRequest.deposit(account: $0, amount: 10_000).encoded()] }
        _ = try sendAll(client, setup)
        #expect(try total(client) == 200_000)
        var random = SeededRandom(seed: 99)
        var load: [[UInt8]] = []
        for index in 0..<4_000 {
            let from = accounts[Int(random.integer(in: 0...19))], to = accounts[Int(random.integer(in: 0...19))]
            if index % 10 == 0 {
                load.append(BankRequest.hold(hold: Int64(index), account: from, amount: random.integer(in: 1...500), durationNanos: 300_000_000).encoded())
            } else if index % 10 == 5 {
                load.append(BankRequest.capture(hold: Int64(index - 5), to: to).encoded())
            } else {
                load.append(BankRequest.transfer(from: from, to: to, amount: random.integer(in: 1...3_000)).encoded())
            }
        }
        let killer = LeaderKiller(cluster, client, at: [1_000, 2_000, 3_000])
        let answers = try sendAll(client, load, seconds: 180, during: killer.check).map { try BankResponse.decode($0) }
        #expect(killer.victims.count == 3, "leaders killed: \(killer.victims)")
        #expect(answers.contains { $0.status == .ok } && answers.contains { $0.status == .insufficientFunds }, "transfers both done and refused")
        #expect(!answers.contains { $0.status == .malformed })
        // Holds last 300 ms: after a second none is left, on whichever member leads.
        usleep(1_000_000)
        #expect(try total(client) == 200_000, "money created or destroyed")
        let balances = try sendAll(client, accounts.map { BankRequest.balance(account: $0).encoded() }).map { try BankResponse.decode($0) }
        #expect(balances.allSatisfy { $0.status == .ok && $0.first >= 0 && $0.second == 0 }, "an account overdrew or kept a hold past its expiry: \(balances)")
        #expect(balances.reduce(0) { $0 + $1.first } == 200_000)
        // The last victim rejoins; with another leader kill its replica answers the same total.
        if let last = killer.victims.last, !cluster.isRunning(last) { try cluster.start(last) }
        usleep(2_000_000)
        if let leader = client.leaderMemberID?.rawValue { cluster.kill9(leader) }
        #expect(try total(client) == 200_000, "a follower's replica disagrees after failover")
    }

    func total(_ client: ClusterClient<SystemClock>) throws -> Int64? {
        try sendAll(client, [BankRequest.total.encoded()]).first.map { try BankResponse.decode($0).first }
    }
}
