import Glibc
import KeelClient
import KeelCore
import KeelIO
import KeelWire
import Testing

/// Waits for the load to settle (every member at the same commit and append positions), stops
/// the nodes with SIGTERM and checks that the three logs hold the same committed frames, byte for
/// byte except each member's own CRC seal and durable-position field. Returns the frames read
/// from member 0 (empty when the positions never settled).
@discardableResult
func expectReplicasHoldTheSameCommittedLog(_ cluster: NodeCluster) throws -> [CommittedFrame] {
    var commits: [Int64?] = [], appends: [Int64?] = []
    let settled = waitFor(timeoutNanos: 20_000_000_000) {
        commits = cluster.members.map { cluster.counter($0.id, .commitPosition) }
        appends = cluster.members.map { cluster.counter($0.id, .appendPosition) }
        return Set(commits).count == 1 && Set(appends).count == 1 && (commits[0] ?? 0) > 0
    }
    guard settled != nil, let commit = commits[0] else {
        Issue.record("positions never settled: commit \(commits), append \(appends)")
        return []
    }
    for member in cluster.members {
        let process = try #require(cluster.processes[member.id])
        process.stop()
        #expect(process.exitStatus == 0, "node \(member.id) exited with status \(process.exitStatus ?? -1) on SIGTERM")
    }
    let logs = try cluster.members.map { try CommittedLogReader.frames(directory: "\($0.directory)/log", upTo: commit) }
    for (index, frames) in logs.enumerated() {
        let damaged = frames.first { !$0.crcValid }
        #expect(damaged == nil, "member \(index): bad CRC at \(damaged.map { "\($0)" } ?? "")")
    }
    for index in 1..<logs.count {
        #expect(logs[index].count == logs[0].count, "member \(index) has \(logs[index].count) committed frames, member 0 \(logs[0].count)")
        let differing = zip(logs[0], logs[index]).first { $0 != $1 }
        #expect(differing == nil, "member \(index) differs from member 0: \(differing.map { "\($0.1) vs \($0.0)" } ?? "")")
    }
    return logs[0]
}

@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct ReplicaLogTests {
    /// After a pipelined load, the three members' segment files hold the same committed frames.
    @Test(.timeLimit(.minutes(4)))
    func committedLogsAreIdenticalOnEveryMemberAfterLoad() throws {
        let cluster = try NodeCluster()
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        try client.connect()
        let echoes = 20_000
        #expect(try echoAll(client, 0..<echoes, seconds: 120) == 0)
        client.close()
        let frames = try expectReplicasHoldTheSameCommittedLog(cluster)
        // Every echo request is in the committed log as a session message carrying its payload.
        let messages = frames.filter { $0.type == 1 }
        #expect(messages.count >= echoes, "only \(messages.count) session messages committed for \(echoes) echoes")
        let payloadOffset = 52  // frame byte 64, less the CRC (4 B) and durable position (8 B) left out of replicatedBytes
        let last = messages.last.map { Array($0.replicatedBytes[payloadOffset...]) }
        #expect(last == echoPayload(echoes - 1), "the last committed message is not the last echo's payload")
    }
}

extension ReplicaLogTests {
    /// The reader sees a one-byte change in a replicated field, and ignores a changed durable
    /// position only once the CRC is re-sealed (as a follower does).
    @Test(.timeLimit(.minutes(2)))
    func theFrameReaderSeesAChangedByteAndIgnoresTheDurablePosition() throws {
        let cluster = try NodeCluster()
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        try client.connect()
        #expect(try echoAll(client, 0..<10, seconds: 30) == 0)
        client.close()
        let frames = try expectReplicasHoldTheSameCommittedLog(cluster)
        let target = try #require(frames.last { $0.type == 1 })
        let end = frames.last.map { $0.position + Int64(($0.replicatedBytes.count + 4 + 8 + 31) & ~31) } ?? 0
        let directory = "\(cluster.members[1].directory)/log"
        let segment = "\(directory)/log-0000000000000000.seg"
        let fileOffset = 4096 + target.position

        // A different durable position with the CRC re-sealed: still the same replicated bytes.
        try patch(segment, at: fileOffset + 48, [0x20, 0, 0, 0, 0, 0, 0, 0])
        try reseal(segment, frameAt: fileOffset, length: target.replicatedBytes.count + 12)
        let resealed = try CommittedLogReader.frames(directory: directory, upTo: end)
        #expect(resealed.last { $0.type == 1 } == target)

        // One payload byte changed: the CRC no longer matches and the bytes differ.
        try patch(segment, at: fileOffset + 64, [0xAB])
        let damaged = try #require(try CommittedLogReader.frames(directory: directory, upTo: end).last { $0.type == 1 })
        #expect(!damaged.crcValid)
        #expect(damaged != target)
    }

    private func patch(_ path: String, at offset: Int64, _ bytes: [UInt8]) throws {
        let descriptor = open(path, O_RDWR)
        defer { close(descriptor) }
        let written = bytes.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
        #expect(written == bytes.count)
    }

    private func reseal(_ path: String, frameAt offset: Int64, length: Int) throws {
        let descriptor = open(path, O_RDWR)
        defer { close(descriptor) }
        var frame = [UInt8](repeating: 0, count: length)
        #expect(frame.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, length, off_t(offset)) } == length)
        let crc = frame.withUnsafeBytes { raw in
            CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[8...]), continuing: CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0..<4])))
        }
        try patch(path, at: offset + 4, withUnsafeBytes(of: crc.littleEndian) { Array($0) })
    }
}
