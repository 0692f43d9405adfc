import KeelCore
import KeelExamples
import KeelLog
@testable import KeelRuntime
import KeelSimulation
import Testing

@Suite("Where compaction may move the log start")
struct CompactionLimitsTests {
    static func limits(snapshot: Int64, commit: Int64 = 1 << 30, applied: Int64 = 1 << 30, durable: Int64 = 1 << 30, start: Int64 = 0,
                       appended: Int64 = 1 << 30, slack: Int64 = 0, segment: Int64 = 64 << 10) -> CompactionLimits {
        CompactionLimits(
            oldestKeptSnapshot: LogPosition(snapshot), commit: LogPosition(commit), applied: LogPosition(applied), durable: LogPosition(durable),
            logStart: LogPosition(start), appended: LogPosition(appended), slackBytes: slack, segmentLengthBytes: segment)
    }

    @Test("the start moves to the segment start at or below the oldest kept snapshot, less the slack")
    func segmentAlignedBelowTheSnapshot() {
        let segment: Int64 = 64 << 10
        #expect(Self.limits(snapshot: 5 * segment + 100).target == LogPosition(5 * segment))
        #expect(Self.limits(snapshot: 5 * segment).target == LogPosition(5 * segment))
        #expect(Self.limits(snapshot: 5 * segment + 100, slack: segment).target == LogPosition(4 * segment))
        #expect(Self.limits(snapshot: 5 * segment + 100, slack: 101).target == LogPosition(4 * segment))
        // Not a whole segment before the snapshot (or the slack reaches 0): nothing moves.
        #expect(Self.limits(snapshot: segment - 8).target == nil)
        #expect(Self.limits(snapshot: 3 * segment, slack: 3 * segment).target == nil)
        // Never backwards, and not to where it already is.
        #expect(Self.limits(snapshot: 5 * segment + 100, start: 5 * segment).target == nil)
        #expect(Self.limits(snapshot: 5 * segment + 100, start: 6 * segment).target == nil)
    }

    @Test("never past the commit, applied or durable position, nor to the log's very end")
    func everyLimitHolds() {
        let segment: Int64 = 64 << 10
        #expect(Self.limits(snapshot: 9 * segment, commit: 3 * segment + 5).target == LogPosition(3 * segment))
        #expect(Self.limits(snapshot: 9 * segment, applied: 2 * segment + 5).target == LogPosition(2 * segment))
        #expect(Self.limits(snapshot: 9 * segment, durable: 4 * segment - 1).target == LogPosition(3 * segment))
        // The snapshot ends exactly at the log's end on a segment boundary: keep the last segment.
        #expect(Self.limits(snapshot: 4 * segment, appended: 4 * segment).target == LogPosition(3 * segment))
    }
}

@Suite("Log compaction after snapshots, on the simulator")
struct CompactionTests {
    typealias Harness = SimulatedClusterHarness<EchoService>
    static let segmentBytes: Int64 = 32 << 10

    /// Snapshots every 16 KiB of log, two kept, 32 KiB segments, no slack: the log start follows
    /// the older snapshot closely.
    static func snapshotting(slack: Int64? = 0) -> Harness.Snapshotting {
        Harness.Snapshotting(intervalBytes: 16 << 10, kept: 2, compactionSlackBytes: slack, segmentLengthBytes: segmentBytes, maxMessageBytes: 4 << 10)
    }

    static func payload(_ label: String, _ index: Int) -> [UInt8] {
        Array("\(label) \(index) ".utf8) + Array(repeating: UInt8(truncatingIfNeeded: index), count: 400)
    }

    /// Sends `count` requests, ten at a time (the leader checks for a marker once per batch), and
    /// runs until all are answered.
    static func load(_ cluster: Harness, _ client: SimulatedTestClient, _ label: String, count: Int) throws {
        let before = client.responses.count
        for wave in stride(from: 0, to: count, by: 10) {
            for index in wave..<min(count, wave + 10) { client.request(payload(label, index)) }
            let expected = before + min(count, wave + 10)
            guard try cluster.run(maxRounds: 20_000, client: client, until: { client.responses.count == expected }) else {
                Issue.record("only \(client.responses.count - before) of \(count) answered")
                return
            }
        }
    }

    static func segmentStarts(_ member: Harness.Member) -> [LogPosition] {
        member.disk.fileNames().compactMap(LogFormat.segmentStart(fileName:))
    }

    /// Every compaction invariant a member must show.
    static func checkCompacted(_ member: Harness.Member, index: Int) {
        let start = member.consensus.log.startPosition
        #expect(start > .zero, "m\(index) never compacted")
        #expect(start.rawValue % segmentBytes == 0, "m\(index)'s log start \(start.rawValue) is not a segment start")
        if let oldest = member.snapshots?.compactionBound { #expect(start <= oldest, "m\(index)'s log start passed its oldest snapshot") }
        #expect(start <= member.consensus.commitPosition)
        #expect(member.consensus.log.reader.startPosition == start)
        #expect(segmentStarts(member).allSatisfy { $0 >= start }, "m\(index) kept a segment file before its start: \(segmentStarts(member))")
        #expect(segmentStarts(member).min() == start)
    }

    static func started(_ cluster: Harness) throws -> SimulatedTestClient {
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 })
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: cluster.leaders[0])
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.attached })
        return client
    }

    static func converged(_ cluster: Harness, count: Int64) throws -> Bool {
        try cluster.run(maxRounds: 10_000) { cluster.members.allSatisfy { $0.service.service.messagesApplied == count } }
            && Set(cluster.members.map { $0.service.service.digest }).count == 1
    }

    @Test("every member deletes the segments before its oldest kept snapshot; the leader sends a follower behind its start to the snapshot state")
    func membersCompactAndTheLeaderNoLongerHasOldPositions() throws {
        let cluster = try Harness(seed: 41, snapshotting: Self.snapshotting())
        let client = try Self.started(cluster)
        try Self.load(cluster, client, "first", count: 300)
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members.allSatisfy { $0.consensus.log.startPosition >= LogPosition(2 * Self.segmentBytes) } },
                "starts: \(cluster.members.map { $0.consensus.log.startPosition.rawValue })")
        for (index, member) in cluster.members.enumerated() { Self.checkCompacted(member, index: index) }
        #expect(cluster.events.contains { $0.contains("log compacted: start") })

        // A follower stops; the leader compacts past the follower's log end, so the follower can no
        // longer be served from the log: the core wants a snapshot sent (issue 10 §2 sends it).
        let leader = cluster.leaders[0]
        let follower = (leader + 1) % 3
        let followerEnd = cluster.members[follower].consensus.log.appendedPosition
        cluster.crash(follower)
        try Self.load(cluster, client, "second", count: 300)
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members[leader].consensus.log.startPosition > followerEnd })
        try cluster.restart(follower)
        #expect(cluster.members[follower].restoredFrom != nil, "the follower restarts from its own snapshot")
        #expect(try cluster.run(maxRounds: 3_000) { cluster.events.contains { $0.contains("m\(leader) member \(follower) needs a snapshot") } },
                "the leader never asked for a snapshot for m\(follower)")
        // The leader itself still serves: its log start is past what it ever sends.
        let other = 3 - leader - follower
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members[other].service.service.messagesApplied == 600 })
        #expect(cluster.members[leader].service.service.digest == cluster.members[other].service.service.digest)
    }

    @Test("members restart from their snapshots over a compacted log, also after a power loss just after a compaction, and converge")
    func restartsAfterCompaction() throws {
        let cluster = try Harness(seed: 43, snapshotting: Self.snapshotting())
        let client = try Self.started(cluster)
        try Self.load(cluster, client, "first", count: 300)
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members.allSatisfy { $0.consensus.log.startPosition > .zero } })

        // A follower crashes and restarts at once: from its newest snapshot, at or after its log start.
        let leader = cluster.leaders[0]
        let follower = (leader + 1) % 3
        let start = cluster.members[follower].consensus.log.startPosition
        cluster.crash(follower)
        try cluster.restart(follower)
        #expect(cluster.members[follower].consensus.log.startPosition == start)
        #expect((cluster.members[follower].restoredFrom ?? .zero) >= start)
        try Self.load(cluster, client, "second", count: 100)
        #expect(try Self.converged(cluster, count: 400))

        // The power goes right after a member moved its log start: the start record and the
        // deletions were synced, so it restarts with the same start and from a snapshot after it.
        let victim = (leader + 2) % 3
        let before = cluster.members[victim].consensus.log.startPosition
        var sent = 0
        while cluster.members[victim].consensus.log.startPosition == before && sent < 400 {
            client.request(Self.payload("third", sent))
            sent += 1
            try cluster.round(client: client)
        }
        let moved = cluster.members[victim].consensus.log.startPosition
        #expect(moved > before)
        cluster.powerLoss(victim)
        try cluster.restart(victim)
        #expect(cluster.members[victim].consensus.log.startPosition == moved)
        #expect((cluster.members[victim].restoredFrom ?? .zero) >= moved)
        #expect(try cluster.run(maxRounds: 20_000, client: client) { client.responses.count == 400 + sent })
        #expect(try Self.converged(cluster, count: Int64(400 + sent)))

        // And the leader, whose successor then serves on.
        cluster.crash(leader)
        try cluster.restart(leader)
        #expect((cluster.members[leader].restoredFrom ?? .zero) >= cluster.members[leader].consensus.log.startPosition)
        try Self.load(cluster, client, "fourth", count: 100)
        #expect(try Self.converged(cluster, count: Int64(500 + sent)))
        for (index, member) in cluster.members.enumerated() { Self.checkCompacted(member, index: index) }
    }

    @Test("a member whose kept snapshots are all damaged does not restart over a compacted log: the error names each file")
    func noUsableSnapshotAfterCompactionIsAClearError() throws {
        let cluster = try Harness(seed: 47, snapshotting: Self.snapshotting())
        let client = try Self.started(cluster)
        try Self.load(cluster, client, "first", count: 300)
        let victim = (cluster.leaders[0] + 1) % 3
        #expect(try cluster.run(maxRounds: 2_000) { cluster.members[victim].consensus.log.startPosition > .zero })
        let disk = cluster.members[victim].disk
        cluster.crash(victim)
        let files = disk.fileNames(in: "archive").filter { $0.hasSuffix(".snap") }
        #expect(files.count == 2, "files: \(disk.fileNames(in: "archive"))")
        for file in files { disk.flipBit(inFile: file, directory: "archive", atOffset: 300, bit: 3) }
        do {
            try cluster.restart(victim)
            Issue.record("the member restarted with no usable snapshot over a compacted log")
        } catch {
            let text = "\(error)"
            #expect(text.contains("compacted to start at position \(cluster.members[victim].consensus.log.startPosition.rawValue)"), "\(text)")
            for file in files { #expect(text.contains(file), "\(text)") }
        }
    }

    @Test("with compaction off (nil slack) the log keeps every segment")
    func compactionOff() throws {
        let cluster = try Harness(seed: 53, snapshotting: Self.snapshotting(slack: nil))
        let client = try Self.started(cluster)
        try Self.load(cluster, client, "first", count: 300)
        #expect(try cluster.run(maxRounds: 500) { false } == false)
        for member in cluster.members {
            #expect(member.consensus.log.startPosition == .zero)
            #expect(Self.segmentStarts(member).min() == .zero)
            #expect(member.snapshots?.compactionBound != nil, "snapshots were taken")
        }
    }
}
