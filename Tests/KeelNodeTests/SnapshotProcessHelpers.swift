import Glibc
import KeelClient
import KeelCore
import KeelExamples
import KeelIO
import KeelLocalCluster
import Testing

/// Key-value requests of `valueBytes`-byte values, key `key-N` holding `N`'s value.
enum KeyValueLoad {
    static func value(_ index: Int, bytes: Int = 1000) -> [UInt8] {
        let prefix = Array("value-\(index)-".utf8)
        return prefix + [UInt8](repeating: UInt8(ascii: "a") + UInt8(index % 26), count: bytes - prefix.count)
    }

    static func puts(_ range: Range<Int>) -> [[UInt8]] {
        range.map { KeyValueRequest.put(key: Array("key-\($0)".utf8), value: value($0)).encoded() }
    }

    /// Writes `range`, expecting every put acknowledged.
    static func write(_ client: ClusterClient<SystemClock>, _ range: Range<Int>) throws {
        let answers = try sendAll(client, puts(range))
        let failed = answers.filter { (try? KeyValueResponse.decode($0).status) != .ok }
        #expect(failed.isEmpty, "\(failed.count) puts of \(range) not acknowledged ok")
    }

    /// Reads `range` back; the indexes whose value is missing or wrong.
    static func wrongKeys(_ client: ClusterClient<SystemClock>, _ range: Range<Int>) throws -> [Int] {
        let gets = range.map { KeyValueRequest.get(key: Array("key-\($0)".utf8)).encoded() }
        let answers = try sendAll(client, gets).map { try KeyValueResponse.decode($0) }
        guard answers.count == range.count else { return Array(range) }
        return zip(range, answers).filter { $1 != KeyValueResponse(status: .ok, value: value($0)) }.map(\.0)
    }
}

/// Node output, archive files and byte flips for the snapshot process tests.
extension LocalCluster {
    var wholeOutputBytes: Int { 1 << 26 }

    /// Output lines of member `id` (every run so far: its log file is appended to) containing `text`.
    func lines(_ id: Int32, containing text: String) -> [Substring] {
        output(id, lastBytes: wholeOutputBytes).split(separator: "\n").filter { $0.contains(text) }
    }

    func archive(_ id: Int32) -> String { "\(members[Int(id)].directory)/archive" }

    /// File names in member `id`'s archive directory, sorted.
    func archiveFiles(_ id: Int32) -> [String] {
        guard let directory = opendir(archive(id)) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    /// The snapshot id in the last "restarting from snapshot N" line of member `id`, if any.
    func lastRestartSnapshotID(_ id: Int32) -> Int64? {
        guard let line = lines(id, containing: "restarting from snapshot ").last,
              let range = line.firstRange(of: "restarting from snapshot ") else { return nil }
        return Int64(line[range.upperBound...].prefix { $0 != " " })
    }

    /// Polls `condition` every 20 ms for up to `seconds`.
    func waitUntil(seconds: Int64, _ condition: () -> Bool) -> Bool {
        let clock = SystemClock(), deadline = clock.monotonicNanos() + seconds * 1_000_000_000
        while clock.monotonicNanos() < deadline {
            if condition() { return true }
            usleep(20_000)
        }
        return condition()
    }

    /// Waits until member `id` has `count` lines containing `text`; fails the test (with its output) if not.
    func expectLines(_ id: Int32, containing text: String, count: Int, seconds: Int64 = 30, sourceLocation: SourceLocation = #_sourceLocation) {
        let reached = waitUntil(seconds: seconds) { lines(id, containing: text).count >= count }
        #expect(reached, "member \(id): fewer than \(count) lines with '\(text)' within \(seconds) s:\n\(tail(id, lines: 20))", sourceLocation: sourceLocation)
    }

    /// Asks the leader for a snapshot through `client` (an admin request) and waits for its answer.
    func requestSnapshot(_ client: ClusterClient<SystemClock>, correlationID: Int64) throws -> AdminAnswer? {
        let clock = SystemClock(), deadline = clock.monotonicNanos() + 20_000_000_000
        var sent = false
        while clock.monotonicNanos() < deadline {
            _ = try client.poll(waitingUpToNanos: 1_000_000) { _ in }
            if !sent && client.state == .open { sent = client.sendAdmin(.takeSnapshot, correlationID: correlationID) }
            if let answer = client.adminResponses.first(where: { $0.correlationID == correlationID }) { return answer }
        }
        return nil
    }
}

/// Inverts the byte at `offset` of `path` (a stopped node's file); false if it could not.
func flipByte(_ path: String, at offset: Int64) -> Bool {
    let descriptor = open(path, O_RDWR)
    guard descriptor >= 0 else { return false }
    defer { close(descriptor) }
    var byte: UInt8 = 0
    guard pread(descriptor, &byte, 1, off_t(offset)) == 1 else { return false }
    byte ^= 0xFF
    return pwrite(descriptor, &byte, 1, off_t(offset)) == 1 && fsync(descriptor) == 0
}

func fileSize(_ path: String) -> Int64 {
    var info = stat()
    return stat(path, &info) == 0 ? Int64(info.st_size) : -1
}

extension LocalCluster {
    /// Polls `condition` without sleeping (to catch a short-lived file) for up to `seconds`.
    func waitUntilFast(seconds: Int64, _ condition: () -> Bool) -> Bool {
        let clock = SystemClock(), deadline = clock.monotonicNanos() + seconds * 1_000_000_000
        while clock.monotonicNanos() < deadline {
            if condition() { return true }
        }
        return false
    }
}

/// `snapshot-<16 hex digits>.snap` (docs/snapshot-format.md).
func snapshotFileName(id: Int64) -> String {
    let digits = String(id, radix: 16)
    return "snapshot-" + String(repeating: "0", count: max(0, 16 - digits.count)) + digits + ".snap"
}

/// The catalog slot (0 or 1) with the higher sequence (bytes 16..<24, docs/snapshot-format.md).
func currentCatalogSlot(_ archive: String) -> Int {
    func sequence(_ slot: Int) -> UInt64 {
        let descriptor = open("\(archive)/catalog.\(slot)", O_RDONLY)
        guard descriptor >= 0 else { return 0 }
        defer { close(descriptor) }
        var value: UInt64 = 0
        return pread(descriptor, &value, 8, 16) == 8 ? UInt64(littleEndian: value) : 0
    }
    return sequence(1) > sequence(0) ? 1 : 0
}

func readWholeFile(_ path: String) -> String {
    guard let file = fopen(path, "r") else { return "" }
    defer { fclose(file) }
    var text = "", line = [CChar](repeating: 0, count: 4096)
    while fgets(&line, Int32(line.count), file) != nil { text += String(cString: line) }
    return text
}
