import ArgumentParser
import Glibc
import KeelClient
import KeelCore
import KeelExamples
import KeelIO
import KeelLocalCluster

/// `keel demo` (issue 6 §4, issue 8 §5): a local 3-member cluster of separate processes running the
/// key-value store, a client writing keys through it, the leader killed, the new leader taking over
/// and the client carrying on, then every key read back intact — every step printed with terms and
/// positions from the nodes' counters files. Cleans up its processes
/// and files on every exit path, SIGINT and SIGTERM included.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a local 3-node key-value cluster, kill its leader under load, watch it fail over, read the data back.")

    @Option(help: "Keys to write before and after killing the leader.")
    var messages: Int = 2000

    @Option(help: "Durability mode of the nodes: durable or replicated.")
    var sync: String = "durable"

    @Flag(help: "Keep the temporary directory (node logs, logs, counters) afterwards.")
    var keep = false

    func run() throws {
        guard DurabilityMode(rawValue: sync) != nil else { throw ValidationError("--sync must be durable or replicated") }
        signal(SIGINT) { _ in demoInterrupted.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in demoInterrupted.store(true, ordering: .relaxed) }
        let cluster: LocalCluster
        do {
            cluster = try LocalCluster(
                binary: LocalFiles.selfExecutable(), sync: sync, service: "kv", clusterID: "keel-demo", directoryPrefix: "/tmp/keel-demo")
        } catch {
            throw ValidationError("cannot prepare the cluster: \(error)")
        }
        cluster.keepsDirectory = keep
        var failure: DemoError?
        do throws(DemoError) {
            try DemoRun(cluster: cluster, messages: messages).run()
        } catch {
            failure = error
            print("demo stopped: \(error)")
            for member in cluster.members where !cluster.tail(member.id).isEmpty {
                print("--- node \(member.id) (last lines) ---\n\(cluster.tail(member.id))")
            }
        }
        let count = cluster.processes.count
        cluster.shutdown()
        if keep { print("kept \(cluster.root)") }
        print("cleaned up: \(count) node processes stopped and reaped\(keep ? "" : ", \(cluster.root) removed")")
        if failure != nil { throw ExitCode(demoInterrupted.load(ordering: .relaxed) ? 130 : 1) }
    }
}

/// The demo's steps.
struct DemoRun {
    let cluster: LocalCluster
    let messages: Int
    let clock = SystemClock()

    func run() throws(DemoError) {
        step("starting 3 nodes (\(cluster.sync)) in \(cluster.root)")
        for member in cluster.members {
            do { try cluster.start(member.id) } catch { throw DemoError("\(error)") }
            print("  node \(member.id): pid \(cluster.processes[member.id]?.pid ?? 0), member port \(member.memberPort), client port \(member.clientPort)")
        }
        var configuration = ClusterClientConfiguration(members: cluster.clientAddresses)
        configuration.failoverTimeoutNanos = 30_000_000_000
        let client = ClusterClient(configuration: configuration, clock: clock)
        defer { client.close() }

        step("client looking for the leader")
        let connectStart = clock.monotonicNanos()
        try pump(client, seconds: 30, what: "a session") { client.state == .open }
        print("  session \(client.sessionID) opened with leader \(client.leaderMemberID.map { "\($0.rawValue)" } ?? "?") in term \(client.leaderTerm.rawValue) after \(millis(since: connectStart)) ms")
        printCounters()

        step("writing \(messages) keys (put key-N = value-N)")
        try put(client, 0..<messages)
        printCounters()

        guard let leader = client.leaderMemberID, cluster.members.contains(where: { $0.id == leader.rawValue }) else {
            throw DemoError("the client does not know its leader")
        }
        let victim = leader.rawValue
        step("killing the leader, node \(victim) (kill -9), with \(messages) more puts under way")
        let reattachmentsBefore = client.reattachments
        var killedAt: Int64 = 0
        var failoverMillis: Int64?
        try put(client, messages..<(2 * messages)) { answered in
            if killedAt == 0 && answered >= messages + messages / 4 {
                cluster.kill9(victim)
                killedAt = clock.monotonicNanos()
                print("  node \(victim) killed after \(answered) puts were acknowledged")
            }
            if killedAt != 0 && failoverMillis == nil && client.reattachments > reattachmentsBefore {
                failoverMillis = millis(since: killedAt)
                print("  new leader: node \(client.leaderMemberID?.rawValue ?? -1), term \(client.leaderTerm.rawValue), session \(client.sessionID) reattached \(failoverMillis!) ms after the kill; \(client.requestsResent) unacknowledged requests re-sent with their original sequence numbers")
            }
        }
        print("  all \(2 * messages) puts acknowledged, in order")
        printCounters()

        step("reading every key back from the new leader")
        try get(client, 0..<(2 * messages))
        print("  all \(2 * messages) keys hold their values: nothing acknowledged was lost in the failover")

        step("restarting node \(victim) on its directory")
        do { try cluster.start(victim) } catch { throw DemoError("\(error)") }
        try put(client, (2 * messages)..<(2 * messages + 100))
        let leaderNode = client.leaderMemberID?.rawValue ?? -1
        let deadline = clock.monotonicNanos() + 20_000_000_000
        while clock.monotonicNanos() < deadline {
            if demoInterrupted.load(ordering: .relaxed) { throw DemoError("interrupted") }
            if let restarted = cluster.counters(victim), leaderNode >= 0, let current = cluster.counters(leaderNode),
                restarted.commitPosition == current.commitPosition, restarted.commitPosition > 0 { break }
            usleep(50_000)
        }
        printCounters()
        step("done: the cluster lost its leader, the client carried on, and the data is intact")
    }

    /// Puts key-N = value-N for N in `range`, pipelined; every answer must be `ok`.
    func put(_ client: ClusterClient<SystemClock>, _ range: Range<Int>, during: (Int) -> Void = { _ in }) throws(DemoError) {
        try pipeline(client, range, during: during) { KeyValueRequest.put(key: Array("key-\($0)".utf8), value: Array("value-\($0)".utf8)).encoded() } check: { index, response in
            response.status == .ok ? nil : "put key-\(index) answered \(response.status)"
        }
    }

    /// Gets key-N for N in `range`; each must hold value-N.
    func get(_ client: ClusterClient<SystemClock>, _ range: Range<Int>) throws(DemoError) {
        try pipeline(client, range) { KeyValueRequest.get(key: Array("key-\($0)".utf8)).encoded() } check: { index, response in
            let value = String(decoding: response.value, as: UTF8.self)
            return response.status == .ok && value == "value-\(index)" ? nil : "key-\(index) holds \(response.status) '\(value)', not value-\(index)"
        }
    }

    /// Offers the requests for `range` pipelined (a bounded window, so a kill lands mid-stream) and
    /// polls until every answer is back, in order, each passing `check`.
    func pipeline(
        _ client: ClusterClient<SystemClock>, _ range: Range<Int>, during: (Int) -> Void = { _ in }, request: (Int) -> [UInt8],
        check: (Int, KeyValueResponse) -> String?
    ) throws(DemoError) {
        var offered = range.lowerBound, answered = range.lowerBound
        let deadline = clock.monotonicNanos() + 120_000_000_000
        while answered < range.upperBound {
            if demoInterrupted.load(ordering: .relaxed) { throw DemoError("interrupted") }
            if clock.monotonicNanos() > deadline { throw DemoError("only \(answered - range.lowerBound) of \(range.count) answers within 120 s") }
            while offered < range.upperBound && offered - answered < 32, case .accepted = client.offer(request(offered)) { offered += 1 }
            var mismatch: String?
            do {
                try client.poll(waitingUpToNanos: 2_000_000) { response in
                    if mismatch == nil {
                        do { mismatch = check(answered, try KeyValueResponse.decode(Array(response.payload))) } catch { mismatch = "answer \(answered): \(error)" }
                    }
                    answered += 1
                }
            } catch {
                throw DemoError("client: \(error)")
            }
            if let mismatch { throw DemoError(mismatch) }
            during(answered)
        }
    }

    func pump(_ client: ClusterClient<SystemClock>, seconds: Int64, what: String, until done: () -> Bool) throws(DemoError) {
        let deadline = clock.monotonicNanos() + seconds * 1_000_000_000
        while !done() {
            if demoInterrupted.load(ordering: .relaxed) { throw DemoError("interrupted") }
            if clock.monotonicNanos() > deadline { throw DemoError("no \(what) within \(seconds) s") }
            do { try client.poll(waitingUpToNanos: 5_000_000) { _ in } } catch { throw DemoError("client: \(error)") }
        }
    }

    func printCounters() {
        for member in cluster.members {
            guard cluster.isRunning(member.id) else {
                print("  node \(member.id): not running")
                continue
            }
            if let counters = cluster.counters(member.id) {
                print("  node \(member.id): \(counters.roleName.padding(9)) term \(counters.term)  commit @\(counters.commitPosition)  append @\(counters.appendPosition)")
            } else {
                print("  node \(member.id): running (no counters file yet)")
            }
        }
    }

    func step(_ text: String) { print("\n== \(text)") }

    func millis(since start: Int64) -> Int64 { (clock.monotonicNanos() - start) / 1_000_000 }
}

extension String {
    fileprivate func padding(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
