import Glibc
import KeelClient
import KeelCore
import KeelExamples
import KeelIO
import KeelLocalCluster
import Testing

/// Snapshot shipping on real `keel node` processes (issue 10 §2): a follower stopped while the
/// leader's log start moves past its log's end is caught up by the leader's snapshot; a member whose
/// directory was wiped rejoins (`--rejoin`) the same way. Each then leads (transfer-leadership) and
/// answers every key the cluster acknowledged.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct SnapshotShippingProcessTests {
    /// 3 MiB segments (2 is refused for 1 MiB messages: a frame must fit half a segment), a snapshot per MiB, one kept, no slack: the log start follows the snapshots closely.
    static let compacting = ["--snapshot-every-mib", "1", "--snapshots-kept", "1", "--compaction-slack-mib", "0", "--segment-mib", "3"]

    func leader(_ cluster: NodeCluster, _ client: ClusterClient<SystemClock>) -> Int32? {
        client.leaderMemberID?.rawValue ?? cluster.leader()
    }

    /// Makes `id` the leader through `keel tool transfer-leadership`; true when the tool says it leads.
    func transferLeadership(_ cluster: NodeCluster, to id: Int32) throws -> Bool {
        let tool = try ChildProcess.spawn(
            cluster.binary, ["tool", "transfer-leadership", "--to", "\(id)", "--members", cluster.memberList], outputPath: "\(cluster.root)/transfer\(id).log")
        return tool.waitForExit(timeoutNanos: 60_000_000_000) == 0
    }

    /// Writes keys until the leader has moved its log start `count` times since `before`.
    func writeUntilCompacted(
        _ cluster: NodeCluster, _ client: ClusterClient<SystemClock>, leader: Int32, from start: Int, compactionsBefore: Int, count: Int
    ) throws -> Int {
        var written = start
        while cluster.lines(leader, containing: "log compacted: start").count < compactionsBefore + count && written < start + 12_000 {
            try KeyValueLoad.write(client, written..<written + 500)
            written += 500
        }
        #expect(cluster.lines(leader, containing: "log compacted: start").count >= compactionsBefore + count, "the leader never compacted:\n\(cluster.tail(leader, lines: 15))")
        return written
    }

    func expectServes(_ cluster: NodeCluster, _ id: Int32, keys: Int) throws {
        #expect(try transferLeadership(cluster, to: id), "member \(id) did not take the leadership:\n\(cluster.tail(id, lines: 15))")
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        #expect(client.leaderMemberID?.rawValue == id, "the client's leader is \(client.leaderMemberID.map { "\($0.rawValue)" } ?? "none"), not \(id)")
        let wrong = try KeyValueLoad.wrongKeys(client, 0..<keys)
        #expect(wrong.isEmpty, "member \(id), leading: \(wrong.count) of \(keys) keys lost or wrong, first key-\(wrong.first ?? -1)")
    }

    @Test("kv: a follower stopped while the leader's log start moves past its log's end is caught up by a shipped snapshot, then leads and answers every key", .timeLimit(.minutes(4)))
    func laggingFollowerCaughtUpBySnapshot() throws {
        let cluster = try NodeCluster(service: "kv")
        defer { cluster.shutdown() }
        for member in cluster.members { cluster.extraArguments[member.id] = Self.compacting }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        try KeyValueLoad.write(client, 0..<300)
        guard let leader = leader(cluster, client) else {
            Issue.record("no leader")
            return
        }
        let follower = (leader + 1) % 3
        cluster.stop(follower)
        let written = try writeUntilCompacted(
            cluster, client, leader: leader, from: 300, compactionsBefore: cluster.lines(leader, containing: "log compacted: start").count, count: 2)
        try cluster.start(follower)
        cluster.expectLines(leader, containing: "sending snapshot", count: 1, seconds: 60)
        cluster.expectLines(follower, containing: "the service restarted from snapshot", count: 1, seconds: 60)
        cluster.expectLines(leader, containing: "member \(follower) installed snapshot", count: 1, seconds: 60)
        try KeyValueLoad.write(client, written..<written + 200)
        let target = cluster.counter(leader, .commitPosition) ?? 0
        #expect(cluster.waitUntil(seconds: 30) { cluster.counter(follower, .commitPosition) ?? 0 >= target }, "member \(follower) did not catch up:\n\(cluster.tail(follower, lines: 15))")
        client.close()
        try expectServes(cluster, follower, keys: written + 200)
    }

    @Test("kv: a member whose directory was wiped rejoins with --rejoin (non-voting until caught up), receives the leader's snapshot, then leads and answers every key", .timeLimit(.minutes(4)))
    func wipedMemberRejoins() throws {
        let cluster = try NodeCluster(service: "kv")
        defer { cluster.shutdown() }
        for member in cluster.members { cluster.extraArguments[member.id] = Self.compacting }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        try KeyValueLoad.write(client, 0..<300)
        guard let leader = leader(cluster, client) else {
            Issue.record("no leader")
            return
        }
        let written = try writeUntilCompacted(
            cluster, client, leader: leader, from: 300, compactionsBefore: cluster.lines(leader, containing: "log compacted: start").count, count: 1)
        let wiped = (leader + 2) % 3
        cluster.kill9(wiped)
        LocalFiles.removeTree(cluster.members[Int(wiped)].directory)
        mkdir(cluster.members[Int(wiped)].directory, 0o755)
        cluster.extraArguments[wiped] = Self.compacting + ["--rejoin"]
        try cluster.start(wiped)
        cluster.expectLines(wiped, containing: "the service restarted from snapshot", count: 1, seconds: 60)
        try KeyValueLoad.write(client, written..<written + 200)
        let target = cluster.counter(leader, .commitPosition) ?? 0
        #expect(cluster.waitUntil(seconds: 30) { cluster.counter(wiped, .commitPosition) ?? 0 >= target }, "member \(wiped) did not catch up:\n\(cluster.tail(wiped, lines: 15))")
        client.close()
        try expectServes(cluster, wiped, keys: written + 200)
    }
}
