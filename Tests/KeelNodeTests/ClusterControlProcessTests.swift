import Glibc
import KeelClient
import KeelCore
import KeelExamples
import KeelIO
import KeelLocalCluster
import Testing

/// The cluster-wide commands on real `keel node` processes (issue 10 §3-§4): `keel tool
/// transfer-leadership` under load, `suspend` / `resume`, `shutdown` then a restart.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct ClusterControlProcessTests {
    /// Runs `keel tool ARGS --members …` to its end; its exit status and output.
    func tool(_ cluster: NodeCluster, _ arguments: [String], name: String, seconds: Int64 = 30) throws -> (status: Int32?, output: String) {
        let process = try spawnTool(cluster, arguments, name: name)
        let status = process.waitForExit(timeoutNanos: seconds * 1_000_000_000)
        if status == nil { process.kill9() }
        return (status, readWholeFile("\(cluster.root)/\(name).log"))
    }

    func spawnTool(_ cluster: NodeCluster, _ arguments: [String], name: String) throws -> ChildProcess {
        try ChildProcess.spawn(cluster.binary, ["tool"] + arguments + ["--members", cluster.memberList], outputPath: "\(cluster.root)/\(name).log")
    }

    @Test("transfer-leadership twice under client load (bank deposits): each target leads, the tool exits 0, every deposit is acknowledged and applied once (the total is exactly their sum)", .timeLimit(.minutes(3)))
    func transferUnderLoad() throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        let accounts: [Int64] = Array(1...8)
        _ = try sendAll(client, accounts.map { BankRequest.open(account: $0).encoded() })
        guard let first = client.leaderMemberID?.rawValue else {
            Issue.record("no leader")
            return
        }
        let count = 6_000
        let deposits = (0..<count).map { BankRequest.deposit(account: accounts[$0 % accounts.count], amount: Int64($0 % 7 + 1)).encoded() }
        let expected = (0..<count).reduce(Int64(0)) { $0 + Int64($1 % 7 + 1) }
        let targets: [Int32] = [(first + 1) % 3, (first + 2) % 3]
        var tools: [ChildProcess] = []
        var toolError: (any Error)?
        let answers = try sendAll(client, deposits, seconds: 150) { answered in
            // The next transfer once the previous tool is done, each a third of the way further.
            guard tools.count < targets.count, answered >= (tools.count + 1) * count / 3, tools.last.map({ !$0.isRunning }) ?? true else { return }
            do { tools.append(try spawnTool(cluster, ["transfer-leadership", "--to", "\(targets[tools.count])"], name: "transfer\(tools.count)")) } catch {
                toolError = error
            }
        }
        #expect(toolError == nil)
        #expect(tools.count == 2, "only \(tools.count) transfers started before the load ended")
        for (index, process) in tools.enumerated() {
            let status = process.waitForExit(timeoutNanos: 30_000_000_000)
            if status == nil { process.kill9() }
            let output = readWholeFile("\(cluster.root)/transfer\(index).log")
            #expect(status == 0, "transfer to \(targets[index]): status \(String(describing: status)): \(output)")
            #expect(output.hasPrefix("leader \(targets[index]):"), "\(output)")
        }
        #expect(answers.count == count)
        let notOK = answers.filter { (try? BankResponse.decode($0).status) != .ok }
        #expect(notOK.isEmpty, "\(notOK.count) deposits not answered ok")
        let total = try sendAll(client, [BankRequest.total.encoded()]).first.map { try BankResponse.decode($0).first }
        #expect(total == expected, "deposits lost or applied twice: total \(String(describing: total)), expected \(expected)")
        #expect(client.reattachments >= 2, "the client followed \(client.reattachments) leader changes")
        #expect(cluster.members.allSatisfy { cluster.lines($0.id, containing: "leadership transfer to member").count <= 1 })
    }

    @Test("suspend: the tool exits 0 and requests are refused (retried by the client, not applied) also after the leader is killed; resume: every request is applied once and every key reads back", .timeLimit(.minutes(3)))
    func suspendRefusesAndResumeServes() throws {
        let cluster = try NodeCluster(service: "kv")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        try KeyValueLoad.write(client, 0..<100)

        let suspended = try tool(cluster, ["suspend", "--json"], name: "suspend")
        #expect(suspended.status == 0, "\(suspended)")
        #expect(suspended.output.contains("\"outcome\" : \"ok\"") && suspended.output.contains("suspended at log position"), "\(suspended.output)")
        for member in cluster.members { cluster.expectLines(member.id, containing: "cluster suspended at position", count: 1) }

        // Offered while suspended: refused, re-sent by the client, never answered.
        for (index, request) in KeyValueLoad.puts(100..<150).enumerated() {
            guard case .accepted = client.offer(request) else {
                Issue.record("offer \(index) not accepted")
                return
            }
        }
        var answers: [[UInt8]] = []
        func pollFor(seconds: Int64, until: () -> Bool = { false }) throws {
            let clock = SystemClock(), deadline = clock.monotonicNanos() + seconds * 1_000_000_000
            while clock.monotonicNanos() < deadline && !until() {
                try client.poll(waitingUpToNanos: 5_000_000) { answers.append(Array($0.payload)) }
            }
        }
        try pollFor(seconds: 2)
        #expect(answers.isEmpty, "\(answers.count) requests answered while suspended")
        #expect(client.requestsRefused > 0)

        // The state is replicated: the next leader refuses too.
        guard let leader = client.leaderMemberID?.rawValue else {
            Issue.record("no leader")
            return
        }
        cluster.kill9(leader)
        let refusedBefore = client.requestsRefused
        try pollFor(seconds: 20) { client.leaderMemberID?.rawValue != leader && client.state == .open && client.requestsRefused > refusedBefore }
        #expect(client.leaderMemberID?.rawValue != leader, "no new leader")
        try pollFor(seconds: 1)
        #expect(answers.isEmpty, "\(answers.count) requests answered by the new leader while suspended")
        #expect(client.requestsRefused > refusedBefore, "the new leader did not refuse")

        let resumed = try tool(cluster, ["resume"], name: "resume")
        #expect(resumed.status == 0, "\(resumed)")
        #expect(resumed.output.contains("resumed at log position"), "\(resumed.output)")
        try pollFor(seconds: 30) { answers.count == 50 }
        #expect(answers.count == 50, "only \(answers.count) of 50 answered after resume")
        #expect(answers.allSatisfy { (try? KeyValueResponse.decode($0).status) == .ok })
        try cluster.start(leader)
        let wrong = try KeyValueLoad.wrongKeys(client, 0..<150)
        #expect(wrong.isEmpty, "\(wrong.count) keys lost or wrong, first: key-\(wrong.first ?? -1)")
    }

    @Test("shutdown of a suspended cluster: every member writes a final snapshot at the same position and exits 0, the tool waits for them; a restart of all loads those snapshots with nothing to replay, comes back suspended (refuses), and after resume every key reads back", .timeLimit(.minutes(3)))
    func shutdownThenRestart() throws {
        let cluster = try NodeCluster(service: "kv")
        defer { cluster.shutdown() }
        try cluster.startAll()
        var client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        try KeyValueLoad.write(client, 0..<300)
        client.close()
        // Suspended before the shutdown: the state is in the final snapshots.
        let suspended = try tool(cluster, ["suspend"], name: "suspend")
        #expect(suspended.status == 0, "\(suspended)")

        let waits = cluster.members.flatMap { ["--wait-dir", $0.directory] }
        let result = try tool(cluster, ["shutdown"] + waits, name: "shutdown")
        #expect(result.status == 0, "\(result)")
        #expect(result.output.contains("the 3 local nodes exited"), "\(result.output)")
        var positions: Set<Substring> = []
        for member in cluster.members {
            let status = cluster.processes[member.id]?.waitForExit(timeoutNanos: 10_000_000_000)
            #expect(status == 0, "member \(member.id) exit status \(String(describing: status)):\n\(cluster.tail(member.id, lines: 10))")
            for line in cluster.lines(member.id, containing: "shutdown applied at position ") {
                if let range = line.firstRange(of: "shutdown applied at position ") { positions.insert(line[range.upperBound...].prefix { $0 != ":" }) }
            }
            #expect(cluster.lines(member.id, containing: ") written").count == 1, "\(cluster.tail(member.id, lines: 10))")
        }
        #expect(positions.count == 1, "members shut down at different positions: \(positions)")

        for member in cluster.members { cluster.stop(member.id) }
        try cluster.startAll()
        for member in cluster.members {
            cluster.expectLines(member.id, containing: "restarting from snapshot ", count: 1)
            let line = cluster.lines(member.id, containing: "restarting from snapshot ").last.map(String.init) ?? ""
            #expect(positions.first.map { line.contains("at position \($0) ") } == true, "\(line)")
        }
        client = makeClient(cluster)
        try client.connect()
        // Still suspended after the restart: a request is refused, and served once resumed.
        guard case .accepted = client.offer(KeyValueRequest.get(key: Array("key-1".utf8)).encoded()) else {
            Issue.record("offer not accepted")
            return
        }
        var answered = 0
        let clock = SystemClock(), until = clock.monotonicNanos() + 1_500_000_000
        while clock.monotonicNanos() < until { try client.poll(waitingUpToNanos: 5_000_000) { _ in answered += 1 } }
        #expect(answered == 0 && client.requestsRefused > 0, "answered \(answered), refused \(client.requestsRefused): not suspended after the restart")
        let resumed = try tool(cluster, ["resume"], name: "resume")
        #expect(resumed.status == 0, "\(resumed)")
        let served = cluster.waitUntil(seconds: 20) {
            (try? client.poll(waitingUpToNanos: 5_000_000) { _ in answered += 1 }) != nil && answered == 1
        }
        #expect(served, "the refused request was not answered after resume")
        let wrong = try KeyValueLoad.wrongKeys(client, 0..<300)
        #expect(wrong.isEmpty, "\(wrong.count) keys lost or wrong after the restart, first: key-\(wrong.first ?? -1)")
        for member in cluster.members {
            #expect(cluster.lines(member.id, containing: "replay").isEmpty, "member \(member.id) replayed: \(cluster.tail(member.id, lines: 10))")
        }
    }
}
