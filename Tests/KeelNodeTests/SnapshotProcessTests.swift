import Glibc
import KeelClient
import KeelCore
import KeelExamples
import KeelIO
import KeelLocalCluster
import Testing

/// Snapshots on real `keel node` processes (issue 9 §3): restarts from them, kill -9 inside their
/// writing, damaged snapshot and catalog bytes, `keel tool snapshot`.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct SnapshotProcessTests {
    static let restartLine = "restarting from snapshot "
    static let writtenLine = ") written"

    @Test("kv with --snapshot-every-mib 1: every member restarted in turn, then all at once, restarts from a snapshot and every acknowledged key reads back", .timeLimit(.minutes(3)))
    func restartsFromSnapshotsKeepEveryKey() throws {
        let cluster = try NodeCluster(service: "kv")
        defer { cluster.shutdown() }
        for member in cluster.members { cluster.extraArguments[member.id] = ["--snapshot-every-mib", "1"] }
        try cluster.startAll()
        var client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        // ~1.3 MiB of log: past the first marker on every member.
        var written = 0
        try KeyValueLoad.write(client, 0..<1_300)
        written = 1_300
        for member in cluster.members { cluster.expectLines(member.id, containing: Self.writtenLine, count: 1) }

        for member in cluster.members {
            let id = member.id, restartsBefore = cluster.lines(id, containing: Self.restartLine).count
            cluster.stop(id)
            try cluster.start(id)
            cluster.expectLines(id, containing: Self.restartLine, count: restartsBefore + 1)
            #expect(cluster.lastRestartSnapshotID(id) != nil, "member \(id): \(cluster.tail(id, lines: 10))")
            // More keys while it catches up; the next member stops only once this one has the commit.
            try KeyValueLoad.write(client, written..<written + 300)
            written += 300
            let target = (0..<3).compactMap { cluster.counter($0, .commitPosition) }.max() ?? 0
            let caughtUp = cluster.waitUntil(seconds: 30) { cluster.counter(id, .commitPosition) ?? 0 >= target }
            #expect(caughtUp, "member \(id) did not catch up to \(target):\n\(cluster.tail(id, lines: 10))")
        }

        // All at once, by kill -9: each member restarts from its own newest snapshot and replays its log.
        client.close()
        let restartsBefore = cluster.members.map { cluster.lines($0.id, containing: Self.restartLine).count }
        for member in cluster.members { cluster.kill9(member.id) }
        try cluster.startAll()
        for member in cluster.members {
            cluster.expectLines(member.id, containing: Self.restartLine, count: restartsBefore[Int(member.id)] + 1)
            #expect(cluster.lastRestartSnapshotID(member.id) != nil)
        }
        client = makeClient(cluster)
        try client.connect()
        let wrong = try KeyValueLoad.wrongKeys(client, 0..<written)
        #expect(wrong.isEmpty, "\(wrong.count) of \(written) keys lost or wrong after the restarts, first: key-\(wrong.first ?? -1)")
        #expect(cluster.members.allSatisfy { cluster.lines($0.id, containing: "snapshot rejected").isEmpty })
    }

    @Test("kv on one node: kill -9 while a snapshot is being written (its .tmp file outlives the process); the restart removes it, uses the previous snapshot and every key reads back", .timeLimit(.minutes(2)))
    func killInsideSnapshotWriting() throws {
        let cluster = try NodeCluster(size: 1, service: "kv")
        defer { cluster.shutdown() }
        try cluster.startAll()
        var client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        // ~3 MiB of service state: each snapshot takes a while to write and sync.
        let count = 3_000
        try KeyValueLoad.write(client, 0..<count)
        #expect(try cluster.requestSnapshot(client, correlationID: 1)?.status == .ok)
        cluster.expectLines(0, containing: Self.writtenLine, count: 1)

        // Ask for snapshots until the kill lands while one's temporary file exists.
        var leftover: String?
        for attempt in 0..<10 where leftover == nil {
            let writtenBefore = cluster.lines(0, containing: Self.writtenLine).count
            #expect(client.sendAdmin(.takeSnapshot, correlationID: Int64(100 + attempt)))
            let sawTemporary = cluster.waitUntilFast(seconds: 10) {
                _ = try? client.poll(waitingUpToNanos: 0) { _ in }
                return cluster.archiveFiles(0).contains { $0.hasSuffix(".tmp") }
                    || cluster.lines(0, containing: Self.writtenLine).count > writtenBefore
            }
            cluster.kill9(0)
            #expect(sawTemporary, "no snapshot started on request \(attempt):\n\(cluster.tail(0, lines: 10))")
            leftover = cluster.archiveFiles(0).first { $0.hasSuffix(".tmp") }
            if leftover == nil {
                // The snapshot was done before the kill: again.
                client.close()
                try cluster.start(0)
                client = makeClient(cluster)
                try client.connect()
            }
        }
        let temporary = try #require(leftover, "no kill landed inside snapshot writing in 10 attempts")
        let snapshotsLeft = cluster.archiveFiles(0).filter { $0.hasSuffix(".snap") }

        client.close()
        let restartsBefore = cluster.lines(0, containing: Self.restartLine).count
        try cluster.start(0)
        cluster.expectLines(0, containing: Self.restartLine, count: restartsBefore + 1)
        #expect(!cluster.lines(0, containing: "removed \(temporary): a snapshot whose writing never finished").isEmpty, "\(cluster.tail(0, lines: 10))")
        #expect(!cluster.archiveFiles(0).contains(temporary))
        // The snapshot used is a complete one from before the kill, older than the interrupted one.
        let used = try #require(cluster.lastRestartSnapshotID(0))
        let interruptedID = Int64(temporary.dropFirst("snapshot-".count).prefix(16), radix: 16) ?? -1
        #expect(used < interruptedID && snapshotsLeft.contains(snapshotFileName(id: used)), "restarted from \(used); files \(snapshotsLeft), interrupted \(temporary)")
        #expect(cluster.lines(0, containing: "snapshot rejected").isEmpty)
        client = makeClient(cluster)
        try client.connect()
        let wrong = try KeyValueLoad.wrongKeys(client, 0..<count)
        #expect(wrong.isEmpty, "\(wrong.count) of \(count) keys lost or wrong, first: key-\(wrong.first ?? -1)")
        // And the node snapshots again.
        let writtenBefore = cluster.lines(0, containing: Self.writtenLine).count
        #expect(try cluster.requestSnapshot(client, correlationID: 2)?.status == .ok)
        cluster.expectLines(0, containing: Self.writtenLine, count: writtenBefore + 1)
    }

    @Test("kv on one node: a flipped byte in the newest snapshot is reported with file and offset and the previous one used; a damaged catalog slot is reported and the other used; both slots damaged stop the node with a clear error", .timeLimit(.minutes(2)))
    func damagedSnapshotAndCatalogBytes() throws {
        let cluster = try NodeCluster(size: 1, service: "kv")
        defer { cluster.shutdown() }
        try cluster.startAll()
        var client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        var written = 0
        for batch in 1...2 {
            try KeyValueLoad.write(client, written..<written + 800)
            written += 800
            #expect(try cluster.requestSnapshot(client, correlationID: Int64(batch))?.status == .ok)
            cluster.expectLines(0, containing: Self.writtenLine, count: batch)
        }
        try KeyValueLoad.write(client, written..<written + 400)
        written += 400
        let snapshots = cluster.archiveFiles(0).filter { $0.hasSuffix(".snap") }
        try #require(snapshots.count == 2, "archive: \(cluster.archiveFiles(0))")

        // The newest snapshot's middle byte flipped (inside a chunk of service state).
        client.close()
        cluster.stop(0)
        let newest = "\(cluster.archive(0))/\(snapshots[1])", flippedAt = fileSize(newest) / 2
        #expect(flipByte(newest, at: flippedAt))
        var restarts = cluster.lines(0, containing: Self.restartLine).count
        try cluster.start(0)
        cluster.expectLines(0, containing: Self.restartLine, count: restarts + 1)
        let rejected = cluster.lines(0, containing: "snapshot rejected: \(newest) at offset ")
        #expect(rejected.count == 1, "\(cluster.tail(0, lines: 10))")
        if let line = rejected.first, let range = line.firstRange(of: " at offset "), let offset = Int64(line[range.upperBound...].prefix { $0 != ":" }) {
            #expect(offset > 0 && offset <= flippedAt, "reported offset \(offset); the flipped byte is at \(flippedAt)")
        }
        #expect(cluster.lastRestartSnapshotID(0).map(snapshotFileName) == snapshots[0])
        // Set aside: out of the catalog (it no longer counts against --snapshots-kept), kept for a look.
        let setAside = String(snapshots[1].dropLast(".snap".count)) + ".rejected"
        #expect(cluster.archiveFiles(0).contains(setAside) && !cluster.archiveFiles(0).contains(snapshots[1]), "\(cluster.archiveFiles(0))")
        #expect(!cluster.lines(0, containing: "set aside as \(setAside)").isEmpty, "\(cluster.tail(0, lines: 10))")
        client = makeClient(cluster)
        try client.connect()
        var wrong = try KeyValueLoad.wrongKeys(client, 0..<written)
        // `keel stat`'s counters say so too (copied once a millisecond; the reads above took longer).
        let counters = nodeCounters(String(cluster.archive(0).dropLast("/archive".count)))
        #expect(counters[.snapshotsRejected] == 1 && counters[.snapshotsLoaded] == 1, "\(counters)")
        #expect(counters[.snapshotLoadNanos].map { $0 >= 0 } == true && counters[.replayNanos].map { $0 >= 0 } == true, "\(counters)")
        #expect(wrong.isEmpty, "\(wrong.count) of \(written) keys lost or wrong after the older snapshot and replay, first: key-\(wrong.first ?? -1)")

        // A byte of the current catalog slot's first entry flipped: the other slot and the files are used.
        try KeyValueLoad.write(client, written..<written + 200)
        written += 200
        client.close()
        cluster.stop(0)
        let slot = currentCatalogSlot(cluster.archive(0))
        let slotPath = "\(cluster.archive(0))/catalog.\(slot)"
        #expect(flipByte(slotPath, at: 72))
        restarts = cluster.lines(0, containing: Self.restartLine).count
        try cluster.start(0)
        cluster.expectLines(0, containing: Self.restartLine, count: restarts + 1)
        #expect(!cluster.lines(0, containing: "catalog slot damaged: \(slotPath) at offset 64: body CRC mismatch").isEmpty, "\(cluster.tail(0, lines: 10))")
        client = makeClient(cluster)
        try client.connect()
        wrong = try KeyValueLoad.wrongKeys(client, 0..<written)
        #expect(wrong.isEmpty, "\(wrong.count) of \(written) keys lost or wrong after the catalog damage, first: key-\(wrong.first ?? -1)")

        // Both slots damaged: the node stops at once naming a slot and the offset, and changes nothing.
        client.close()
        cluster.stop(0)
        for slot in 0..<2 { #expect(flipByte("\(cluster.archive(0))/catalog.\(slot)", at: 8)) }
        let filesBefore = cluster.archiveFiles(0)
        try cluster.start(0)
        let exited = cluster.waitUntil(seconds: 20) { !cluster.isRunning(0) }
        #expect(exited, "the node kept running with both catalog slots damaged")
        #expect(!cluster.lines(0, containing: "both catalog slots are damaged").isEmpty, "\(cluster.tail(0, lines: 10))")
        #expect(!cluster.lines(0, containing: "\(cluster.archive(0))/catalog.0 at offset 0").isEmpty, "\(cluster.tail(0, lines: 10))")
        #expect(cluster.archiveFiles(0) == filesBefore)
        // The operator's way out: remove the catalog; the complete snapshot files are listed again.
        for slot in 0..<2 { unlink("\(cluster.archive(0))/catalog.\(slot)") }
        restarts = cluster.lines(0, containing: Self.restartLine).count
        try cluster.start(0)
        cluster.expectLines(0, containing: Self.restartLine, count: restarts + 1)
        #expect(!cluster.lines(0, containing: "complete, but missing from the catalog").isEmpty, "\(cluster.tail(0, lines: 10))")
        client = makeClient(cluster)
        try client.connect()
        wrong = try KeyValueLoad.wrongKeys(client, 0..<written)
        #expect(wrong.isEmpty, "\(wrong.count) of \(written) keys lost or wrong after the catalog was rebuilt, first: key-\(wrong.first ?? -1)")
    }

    @Test("keel tool snapshot against a running cluster: the leader answers ok and every member writes a snapshot at the same position", .timeLimit(.minutes(1)))
    func toolSnapshotOnEveryMember() throws {
        let cluster = try NodeCluster(service: "kv")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        try KeyValueLoad.write(client, 0..<100)
        let outputPath = "\(cluster.root)/tool.log"
        let tool = try ChildProcess.spawn(cluster.binary, ["tool", "snapshot", "--members", cluster.memberList], outputPath: outputPath)
        let status = tool.waitForExit(timeoutNanos: 30_000_000_000)
        if status == nil { tool.kill9() }
        let toolOutput = readWholeFile(outputPath)
        #expect(status == 0, "keel tool snapshot: status \(String(describing: status)), output: \(toolOutput)")
        #expect(toolOutput.hasPrefix("leader "), "\(toolOutput)")
        var positions: Set<Substring> = []
        for member in cluster.members {
            cluster.expectLines(member.id, containing: Self.writtenLine, count: 1)
            for line in cluster.lines(member.id, containing: Self.writtenLine) {
                if let range = line.firstRange(of: " at position ") { positions.insert(line[range.upperBound...].prefix { $0 != " " }) }
            }
            #expect(cluster.archiveFiles(member.id).filter { $0.hasSuffix(".snap") }.count == 1)
        }
        #expect(positions.count == 1, "members snapshotted at different positions: \(positions)")
    }

    @Test("bank: a snapshot taken with holds pending; all members restarted at once (kill -9), then each in turn; balances as before, the total conserved, every hold expires by its restored timer", .timeLimit(.minutes(2)))
    func bankRestartsFromSnapshotWithPendingHolds() throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        try cluster.startAll()
        var client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        let accounts: [Int64] = Array(1...10)
        _ = try sendAll(client, accounts.flatMap { [BankRequest.open(account: $0).encoded(), BankRequest.deposit(account: $0, amount: 10_000).encoded()] })
        // Holds of 8 s: pending when the snapshot is taken and through the restarts.
        var random = SeededRandom(seed: 9)
        func load(_ range: Range<Int>) -> [[UInt8]] {
            range.map { index in
                let from = accounts[Int(random.integer(in: 0...9))], to = accounts[Int(random.integer(in: 0...9))]
                return index % 10 == 0
                    ? BankRequest.hold(hold: Int64(index), account: from, amount: random.integer(in: 1...300), durationNanos: 8_000_000_000).encoded()
                    : BankRequest.transfer(from: from, to: to, amount: random.integer(in: 1...2_000)).encoded()
            }
        }
        _ = try sendAll(client, load(0..<400))
        #expect(try cluster.requestSnapshot(client, correlationID: 1)?.status == .ok)
        for member in cluster.members { cluster.expectLines(member.id, containing: Self.writtenLine, count: 1) }
        _ = try sendAll(client, load(400..<600))
        let before = try balances(client, accounts)
        #expect(before.contains { $0.second > 0 }, "no hold pending before the restarts: \(before)")

        // All at once first (kill -9, holds pending), then each member in turn.
        client.close()
        let restarts = cluster.members.map { cluster.lines($0.id, containing: Self.restartLine).count }
        for member in cluster.members { cluster.kill9(member.id) }
        try cluster.startAll()
        for member in cluster.members { cluster.expectLines(member.id, containing: Self.restartLine, count: restarts[Int(member.id)] + 1) }
        client = makeClient(cluster)
        try client.connect()
        #expect(try balances(client, accounts).map(\.first) == before.map(\.first), "balances changed across the restart of all")
        for member in cluster.members {
            let restarts = cluster.lines(member.id, containing: Self.restartLine).count
            cluster.stop(member.id)
            try cluster.start(member.id)
            cluster.expectLines(member.id, containing: Self.restartLine, count: restarts + 1)
            let target = (0..<3).compactMap { cluster.counter($0, .commitPosition) }.max() ?? 0
            #expect(cluster.waitUntil(seconds: 30) { cluster.counter(member.id, .commitPosition) ?? 0 >= target })
        }
        let after = try balances(client, accounts)
        #expect(after.map(\.first) == before.map(\.first), "balances changed across the restarts in turn")
        let total = try sendAll(client, [BankRequest.total.encoded()]).first.map { try BankResponse.decode($0).first }
        #expect(total == 100_000, "money created or destroyed")
        // Every hold expires by its timer, restored from the snapshot or the replayed log.
        var held = after
        let expired = cluster.waitUntil(seconds: 20) {
            held = (try? balances(client, accounts)) ?? []
            return held.count == accounts.count && held.allSatisfy { $0.second == 0 }
        }
        #expect(expired, "holds left after their expiry: \(held)")
    }

    func balances(_ client: ClusterClient<SystemClock>, _ accounts: [Int64]) throws -> [BankResponse] {
        try sendAll(client, accounts.map { BankRequest.balance(account: $0).encoded() }).map { try BankResponse.decode($0) }
    }
}

/// The node's counters by type, read from its counters file (empty when it cannot be read).
private func nodeCounters(_ directory: String) -> [CounterType: Int64] {
    guard let file = try? CountersFile.openForReading(path: "\(directory)/\(CountersFile.fileName)") else { return [:] }
    var values: [CounterType: Int64] = [:]
    for counter in file.reader.snapshot() { values[counter.type] = counter.value }
    return values
}
