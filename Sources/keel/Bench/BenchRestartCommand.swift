import ArgumentParser
import Glibc
import KeelClient
import KeelCore
import KeelExamples
import KeelIO
import KeelLocalCluster

/// `keel bench restart`: how long one `keel node` running the key-value example takes to be ready
/// again after a stop, restarting from a snapshot of --keys keys of --value-bytes values plus
/// --log-after-mib MiB of log written after it (issue 9, §4), beside a raw read of the snapshot
/// file in the same run.
struct BenchRestartCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restart",
        abstract: "Measure a node's restart time to ready from a snapshot plus log after it, against a raw read of the snapshot file.",
        discussion: """
            Starts a one-member cluster (`keel node --service kv`, durable) in a scratch folder under --dir, puts \
            --keys keys of --value-bytes bytes, asks for a snapshot (admin request), then puts (overwriting keys) \
            until the log has grown --log-after-mib MiB past the snapshot, and stops the node (SIGTERM). Each run \
            then drops the node's files from the page cache (sync, posix_fadvise DONTNEED; unless --no-cold), reads \
            the snapshot file raw with pread in 1 MiB calls (the baseline; dropped from the cache again after), and \
            restarts the node, timing from the spawn: until its counters show the snapshot loaded (snapshot-load-ns: \
            the service's onStart reading it), until the replay of the local log is done (replay-ns; `ready`), and \
            until a client's get is answered. Between spawn and the service's load come the process start, opening \
            the log, the archive's full verification pass over the snapshot, and the decode of its consensus state.
            """)

    @Option(help: "Keys in the store (8-byte keys).")
    var keys: Int = 1_000_000
    @Option(name: .customLong("value-bytes"), help: "Bytes of each value.")
    var valueBytes: Int = 1024
    @Option(name: .customLong("log-after-mib"), help: "MiB of log written after the snapshot (replayed at each restart).")
    var logAfterMiB: Int = 100
    @Option(help: "Restarts measured; the median is reported.")
    var runs: Int = 3
    @Option(help: "Folder on the disk to measure (a scratch folder is made inside it).")
    var dir: String = "/tmp"
    @Option(name: .customLong("in-flight"), help: "Requests in flight while loading the store.")
    var inFlight: Int = 2048
    @Flag(inversion: .prefixedNo, help: "Drop the node's files from the page cache before each restart.")
    var cold = true
    @Flag(help: "Keep the scratch folder (node directory and output) afterwards.")
    var keep = false
    @Flag(help: "A short smoke run (20,000 keys, 8 MiB of log after, one run); its figures are not for recording.")
    var quick = false

    func validate() throws {
        guard keys > 0, valueBytes > 0, logAfterMiB >= 0, runs >= 1, inFlight >= 1 else {
            throw ValidationError("--keys, --value-bytes, --runs, --in-flight must be positive; --log-after-mib not negative")
        }
    }

    func run() throws {
        try requireIOUring()
        signal(SIGINT) { _ in benchInterrupted.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in benchInterrupted.store(true, ordering: .relaxed) }
        let keyCount = quick ? 20_000 : keys
        let afterBytes = Int64(quick ? 8 : logAfterMiB) << 20
        let stateBytes = Int64(keyCount) * Int64(valueBytes + 16)
        let free = freeBytes(at: dir)
        // The log (the state once, plus what follows the snapshot), the snapshot, and room to spare.
        let needed = 2 * stateBytes + afterBytes + (512 << 20)
        guard free >= needed else {
            throw BenchmarkError("keel bench restart: needs about \(needed >> 20) MiB free in \(dir), has \(free >> 20) MiB; use --dir or fewer --keys")
        }
        let cluster = try LocalCluster(
            binary: LocalFiles.selfExecutable(), size: 1, sync: "durable", service: "kv", clusterID: "keel-bench-restart",
            directoryPrefix: dir + "/keel-bench-restart")
        cluster.keepsDirectory = keep
        defer {
            cluster.shutdown()
            print(keep ? "kept \(cluster.root)" : "cleaned up: node stopped and reaped, \(cluster.root) removed")
        }
        let machine = MachineDescription.current(directory: cluster.root)
        print("keel bench restart — \(machine.cpuModel), \(machine.cores) cores, kernel \(machine.kernel), \(machine.fileSystem) at \(dir), \(machine.date)")
        print("one node, kv service, durable: \(grouped(Double(keyCount))) keys × \(valueBytes) B, then \(afterBytes >> 20) MiB of log after the snapshot; \(quick ? 1 : runs) restart(s), \(cold ? "cold (page cache dropped)" : "warm")")
        print("load average before: \(loadAverage())")

        let node = RestartBenchNode(cluster: cluster, inFlight: inFlight)
        try node.startAndConnect()
        let loadStart = monotonicNanos()
        try node.put(keys: 0..<keyCount, valueBytes: valueBytes)
        let loadNanos = monotonicNanos() - loadStart
        print("loaded \(grouped(Double(keyCount))) keys in \(formatFixed(Double(loadNanos) / 1e9, decimals: 1)) s (\(grouped(Double(keyCount) / (Double(loadNanos) / 1e9))) puts/s)")
        let snapshot = try node.takeSnapshot()
        print("snapshot at position \(snapshot.position) written in \(snapshot.writeNanos / 1_000_000) ms (node's count): \(snapshot.fileBytes >> 20) MiB, \(snapshot.fileName)")
        let logBefore = node.appendPosition
        var written = 0
        while node.appendPosition - snapshot.position < afterBytes {
            let batch = min(keyCount, 10_000)
            try node.put(keys: 0..<batch, valueBytes: valueBytes)
            written += batch
        }
        print("then \(grouped(Double(written))) more puts: the log grew from \(logBefore) to \(node.appendPosition) (\((node.appendPosition - snapshot.position) >> 20) MiB after the snapshot)")
        node.closeClient()
        cluster.stop(0)

        var results: [RestartRun] = []
        for run in 1...(quick ? 1 : runs) {
            try checkInterrupted()
            let result = try node.restartOnce(snapshot: snapshot, cold: cold)
            results.append(result)
            print("  run \(run): \(result.line(snapshotBytes: snapshot.fileBytes))  [load average \(loadAverage())]")
            cluster.stop(0)
        }
        let median = results.sorted { $0.readyNanos < $1.readyNanos }[results.count / 2]
        print("\nmedian of \(results.count) restart(s) (by time to ready):")
        print(median.summary(snapshotBytes: snapshot.fileBytes))
    }

    private func checkInterrupted() throws {
        if benchInterrupted.load(ordering: .relaxed) { throw BenchmarkError("interrupted") }
    }
}

/// The load average (1, 5, 15 minutes) from /proc/loadavg, for every figure on a shared machine.
func loadAverage() -> String {
    guard let file = fopen("/proc/loadavg", "r") else { return "?" }
    defer { fclose(file) }
    var buffer = [CChar](repeating: 0, count: 128)
    guard fgets(&buffer, Int32(buffer.count), file) != nil else { return "?" }
    let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    return text.split(separator: " ").prefix(3).joined(separator: " ")
}

/// One measured restart.
struct RestartRun {
    var rawReadNanos: Int64
    /// Spawn → the node's "restarting from snapshot" line (process start, log recovery scan, the
    /// archive's verification pass over the snapshot, its consensus state decoded).
    var verifiedNanos: Int64
    /// Spawn → the counters show the snapshot loaded (the service's onStart returned).
    var loadedNanos: Int64
    /// The node's own measure of the service's load (onStart with the snapshot reader).
    var serviceLoadNanos: Int64
    /// The node's own measure of the replay of the local log after the snapshot.
    var replayNanos: Int64
    /// Spawn → the counters show the replay done.
    var readyNanos: Int64
    /// Spawn → a client's get answered.
    var answeredNanos: Int64

    private func ms(_ nanos: Int64) -> String { formatFixed(Double(nanos) / 1e6, decimals: 0) }
    private func mbps(_ bytes: Int64, _ nanos: Int64) -> String { formatFixed(Double(bytes) / Double(max(1, nanos)) * 1000, decimals: 0) }

    func line(snapshotBytes: Int64) -> String {
        "ready \(ms(readyNanos)) ms after spawn (verified at \(ms(verifiedNanos)) ms, snapshot loaded at \(ms(loadedNanos)) ms, of which the service's load \(ms(serviceLoadNanos)) ms; replay \(ms(replayNanos)) ms); "
            + "first get answered at \(ms(answeredNanos)) ms; raw read of the snapshot file \(ms(rawReadNanos)) ms (\(mbps(snapshotBytes, rawReadNanos)) MB/s)"
    }

    func summary(snapshotBytes: Int64) -> String {
        let beforeLoad = loadedNanos - serviceLoadNanos
        return """
              spawn -> recovered         \(ms(verifiedNanos)) ms  (process start, log recovery scan, the snapshot's verification pass, its consensus state)
              spawn -> snapshot loaded   \(ms(loadedNanos)) ms  (before the service's load: \(ms(beforeLoad)) ms; the service's load: \(ms(serviceLoadNanos)) ms)
              snapshot load rate         \(mbps(snapshotBytes, loadedNanos)) MB/s spawn to loaded, \(mbps(snapshotBytes, serviceLoadNanos)) MB/s the service's load alone  |  raw pread of the file \(mbps(snapshotBytes, rawReadNanos)) MB/s (\(ms(rawReadNanos)) ms)
              replay of the log after it \(ms(replayNanos)) ms
              spawn -> ready             \(ms(readyNanos)) ms  (replay of the local log found at start done)
              spawn -> first get answered \(ms(answeredNanos)) ms
            """
    }
}

/// The node of `keel bench restart` and the client that loads it.
final class RestartBenchNode {
    let cluster: LocalCluster
    let inFlight: Int
    private var client: ClusterClient<SystemClock>?
    private let clock = SystemClock()

    struct Snapshot {
        var position: Int64
        var writeNanos: Int64
        var fileName: String
        var fileBytes: Int64
    }

    init(cluster: LocalCluster, inFlight: Int) {
        self.cluster = cluster
        self.inFlight = inFlight
    }

    var directory: String { cluster.members[0].directory }
    var appendPosition: Int64 { cluster.counter(0, .appendPosition) ?? 0 }

    func startAndConnect() throws {
        try cluster.start(0)
        try waitFor("a leader", timeoutNanos: 30_000_000_000) { cluster.leader() == 0 }
        client = try connectedClient()
    }

    private func connectedClient() throws -> ClusterClient<SystemClock> {
        let frameBytes = 64 + 1024 + 64
        var configuration = ClusterClientConfiguration(
            members: cluster.clientAddresses, maxOutstandingRequests: inFlight, outstandingBytesMax: max(1 << 20, (inFlight + 1) * frameBytes * 2))
        configuration.failoverTimeoutNanos = 30_000_000_000
        let client = ClusterClient(configuration: configuration, clock: clock)
        do { try client.connect(timeoutNanos: 30_000_000_000) } catch { throw BenchmarkError("client: \(error)") }
        return client
    }

    func closeClient() {
        client?.close()
        client = nil
    }

    /// Puts every key in `range` (values carry the key's number, so no two are alike), `inFlight` at a time.
    func put(keys range: Range<Int>, valueBytes: Int) throws {
        guard let client else { throw BenchmarkError("not connected") }
        var request = KeyValueRequestBytes.put(key: 0, valueBytes: valueBytes)
        var next = range.lowerBound
        var answered = 0
        var failures = 0
        let total = range.count
        let deadline = monotonicNanos() + 3_600_000_000_000
        while answered < total {
            if benchInterrupted.load(ordering: .relaxed) { throw BenchmarkError("interrupted") }
            while next < range.upperBound && client.outstandingCount < inFlight {
                KeyValueRequestBytes.setKey(&request, next)
                guard case .accepted = request.withUnsafeBytes({ client.offer($0) }) else { break }
                next += 1
            }
            do {
                _ = try client.poll(waitingUpToNanos: 1_000_000) { response in
                    guard response.requestID > 0 else { return }
                    answered += 1
                    if response.payload.count < 1 || response.payload[0] != 0 { failures += 1 }
                }
            } catch { throw BenchmarkError("client: \(error)") }
            if monotonicNanos() > deadline { throw BenchmarkError("loading took over an hour") }
        }
        guard failures == 0 else { throw BenchmarkError("\(failures) puts were not answered ok") }
    }

    /// Asks for a snapshot and waits until the node has written it.
    func takeSnapshot() throws -> Snapshot {
        guard let client else { throw BenchmarkError("not connected") }
        let before = cluster.counter(0, .snapshotsTaken) ?? 0
        var sent = false
        let deadline = monotonicNanos() + 600_000_000_000
        while (cluster.counter(0, .snapshotsTaken) ?? 0) <= before {
            if !sent { sent = client.sendAdmin(.takeSnapshot, correlationID: 1) }
            do { _ = try client.poll(waitingUpToNanos: 5_000_000) { _ in } } catch { throw BenchmarkError("client: \(error)") }
            if let answer = client.adminResponses.first, answer.status != .ok { throw BenchmarkError("snapshot request: \(answer.status) \(answer.text)") }
            if monotonicNanos() > deadline { throw BenchmarkError("no snapshot within 10 minutes") }
        }
        let position = cluster.counter(0, .snapshotPosition) ?? -1
        let writeNanos = cluster.counter(0, .snapshotDurationNanos) ?? -1
        let archive = directory + "/archive"
        guard let name = listDirectory(archive).filter({ $0.hasSuffix(".snap") }).sorted().last else {
            throw BenchmarkError("no snapshot file in \(archive)")
        }
        return Snapshot(position: position, writeNanos: writeNanos, fileName: archive + "/" + name, fileBytes: fileSize(archive + "/" + name))
    }

    /// Drops the node's files from the page cache, reads the snapshot raw, drops again, then starts
    /// the node and times it to loaded, ready and answering.
    func restartOnce(snapshot: Snapshot, cold: Bool) throws -> RestartRun {
        unlink(directory + "/counters.dat")
        sync()
        if cold { dropFromPageCache(directory) }
        let rawRead = try timedRawRead(snapshot.fileName)
        if cold { dropFromPageCache(directory) }
        usleep(500_000)

        let restartLines = restartLineCount()
        let spawned = monotonicNanos()
        try cluster.start(0)
        var verifiedAt: Int64 = -1, loadedAt: Int64 = -1, readyAt: Int64 = -1
        try waitFor("the restart", timeoutNanos: 600_000_000_000, pollNanos: 1_000_000) {
            let now = monotonicNanos()
            // Printed at the end of recovery: the log is open and scanned, the snapshot verified.
            if verifiedAt < 0 && restartLineCount() > restartLines { verifiedAt = now - spawned }
            if loadedAt < 0, let load = cluster.counter(0, .snapshotLoadNanos), load >= 0 { loadedAt = now - spawned }
            if readyAt < 0, let replay = cluster.counter(0, .replayNanos), replay >= 0 { readyAt = now - spawned }
            return loadedAt >= 0 && readyAt >= 0
        }
        if verifiedAt < 0 && restartLineCount() > restartLines { verifiedAt = monotonicNanos() - spawned }
        let serviceLoad = cluster.counter(0, .snapshotLoadNanos) ?? -1
        let replay = cluster.counter(0, .replayNanos) ?? -1
        guard cluster.counter(0, .snapshotsLoaded) == 1 else { throw BenchmarkError("the node did not restart from its snapshot:\n\(cluster.tail(0, lines: 10))") }
        let reader = try connectedClient()
        defer { reader.close() }
        var answered = false
        let getRequest = KeyValueRequestBytes.get(key: 1)
        _ = getRequest.withUnsafeBytes { reader.offer($0) }
        try waitFor("a get's answer", timeoutNanos: 60_000_000_000, pollNanos: 0) {
            do { _ = try reader.poll(waitingUpToNanos: 1_000_000) { response in if response.requestID > 0 { answered = true } } } catch {
                throw BenchmarkError("client: \(error)")
            }
            return answered
        }
        let answeredAt = monotonicNanos() - spawned
        return RestartRun(
            rawReadNanos: rawRead, verifiedNanos: verifiedAt, loadedNanos: loadedAt, serviceLoadNanos: serviceLoad, replayNanos: replay, readyNanos: readyAt,
            answeredNanos: answeredAt)
    }

    /// How many times the node's output says it restarted from a snapshot.
    private func restartLineCount() -> Int {
        cluster.output(0, lastBytes: 1 << 20).components(separatedBy: "restarting from snapshot").count - 1
    }

    private func waitFor(_ what: String, timeoutNanos: Int64, pollNanos: Int64 = 2_000_000, _ done: () throws -> Bool) throws {
        let deadline = monotonicNanos() + timeoutNanos
        while try !done() {
            if benchInterrupted.load(ordering: .relaxed) { throw BenchmarkError("interrupted") }
            if !cluster.isRunning(0) { throw BenchmarkError("the node exited waiting for \(what):\n\(cluster.tail(0, lines: 10))") }
            if monotonicNanos() > deadline { throw BenchmarkError("timed out waiting for \(what):\n\(cluster.tail(0, lines: 10))") }
            if pollNanos > 0 { usleep(UInt32(pollNanos / 1000)) }
        }
    }

    private func timedRawRead(_ path: String) throws -> Int64 {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw IOError(.open, errno: errno, subject: path) }
        defer { close(descriptor) }
        let chunk = 1 << 20
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunk, alignment: 4096)
        defer { buffer.deallocate() }
        let start = monotonicNanos()
        var total: Int64 = 0
        while true {
            let count = pread(descriptor, buffer.baseAddress!, chunk, off_t(total))
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw IOError(.read, errno: errno, subject: path) }
            if count == 0 { break }
            total += Int64(count)
        }
        return monotonicNanos() - start
    }

    /// posix_fadvise(DONTNEED) on every file under `path` (after a sync, so none is dirty).
    private func dropFromPageCache(_ path: String) {
        for name in listDirectory(path) {
            let full = path + "/" + name
            var status = stat()
            guard stat(full, &status) == 0 else { continue }
            if (status.st_mode & S_IFMT) == S_IFDIR {
                dropFromPageCache(full)
                continue
            }
            let descriptor = open(full, O_RDONLY | O_CLOEXEC)
            guard descriptor >= 0 else { continue }
            _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
            close(descriptor)
        }
    }
}

/// The key-value example's request bytes, built in place (8-byte little-endian keys).
enum KeyValueRequestBytes {
    static func put(key: Int, valueBytes: Int) -> [UInt8] {
        var value = [UInt8](repeating: 0x5A, count: valueBytes)
        for index in 0..<min(8, valueBytes) { value[index] = UInt8(truncatingIfNeeded: key >> (8 * index)) }
        return KeyValueRequest.put(key: KeyValueLoad.key(key), value: value).encoded()
    }

    static func get(key: Int) -> [UInt8] { KeyValueRequest.get(key: KeyValueLoad.key(key)).encoded() }

    /// Rewrites the key (and the value's first 8 bytes) of a put built by `put(key:valueBytes:)`.
    static func setKey(_ request: inout [UInt8], _ key: Int) {
        // | op u8 | key length u16 | value length u32 | key | value | (KeyValueRequest's encoding).
        let keyOffset = keyOffsetInPut
        let valueOffset = keyOffset + 8
        for index in 0..<8 {
            let byte = UInt8(truncatingIfNeeded: key >> (8 * index))
            request[keyOffset + index] = byte
            if valueOffset + index < request.count { request[valueOffset + index] = byte }
        }
    }

    /// Where the key starts in an encoded put, found from the encoding itself.
    static let keyOffsetInPut: Int = {
        let a = KeyValueRequest.put(key: KeyValueLoad.key(0), value: [0]).encoded()
        let b = KeyValueRequest.put(key: KeyValueLoad.key(0xFF), value: [0]).encoded()
        return zip(a, b).enumerated().first { $0.element.0 != $0.element.1 }!.offset
    }()
}

func listDirectory(_ path: String) -> [String] {
    guard let directory = opendir(path) else { return [] }
    defer { closedir(directory) }
    var names: [String] = []
    while let entry = readdir(directory) {
        let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}

func fileSize(_ path: String) -> Int64 {
    var status = stat()
    return stat(path, &status) == 0 ? Int64(status.st_size) : -1
}
