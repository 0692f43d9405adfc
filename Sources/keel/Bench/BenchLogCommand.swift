import ArgumentParser
import Foundation
import Glibc
import Histogram
import KeelCore
import KeelIO
import KeelLog
import Synchronization

/// `keel bench log`: the replicated log's append paths against plain `pwrite` (+ `fdatasync`) of the
/// same bytes into the same kind of preallocated file, in one run (issue 3, §5).
struct BenchLogCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Measure log appends (replicated and durable), group commit latency, against pwrite baselines.",
        discussion: """
            Throughput series write --gib GiB each into segments (log) or one file (baseline), both \
            preallocated by --preallocation (the log prepares segments in the background; the baseline's file \
            is prepared before its timing). Durable series wait for fdatasync after every append (closed loop). Group commit \
            offers 32-byte frames open-loop at fixed rates and reports append-to-durable latency, measured \
            from each frame's intended send time (no coordinated omission).
            """)

    @Option(help: "GiB written per replicated throughput series.")
    var gib: Double = 2
    @Option(help: "Seconds per group-commit rate.")
    var seconds: Double = 5
    @Option(name: .customLong("segment-mib"), help: "Segment size in MiB.")
    var segmentMiB: Int = 64
    @Option(help: "Folder on the disk to measure (a scratch folder is made inside it).")
    var dir: String = "."
    @Flag(help: "A short smoke run: small sizes; its figures are not for recording.")
    var quick = false
    @Option(help: "How segments (and the baselines' files) are preallocated: fallocate (the log's default) or zeroFill (prepared in the background).")
    var preallocation: String = "fallocate"
    @Option(help: "Runs of each series; figures are the median run's (ratios: the median of the runs' ratios).")
    var runs: Int = 1
    @Option(help: "Which series to run: any of replicated, durable, group (comma-separated).")
    var series: String = "replicated,durable,group"
    @Option(help: "Which append methods to measure: any of pwrite, mappedCopy (comma-separated).")
    var methods: String = "pwrite,mappedCopy"

    @Option(help: "Payload sizes of the replicated series in bytes (the issue's are 32 and 1024), comma-separated.")
    var payloads: String = "32,1024"
    @Option(name: .customLong("gather-minimum"), help: "The log's gatherPayloadMinimumBytes: smaller payloads are copied into the staging buffer, larger ones gathered from the caller.")
    var gatherMinimum: Int = LogConfiguration(clusterID: 1).gatherPayloadMinimumBytes
    @Option(name: .customLong("sync-kib"), help: "The log's replicatedSyncBytes in KiB (and the synced baseline's threshold).")
    var syncKiB: Int = Int(LogConfiguration(clusterID: 1).replicatedSyncBytes >> 10)
    @Option(name: .customLong("sync-delay-ms"), help: "The log's replicatedSyncDelayNanos in milliseconds (and the synced baseline's).")
    var syncDelayMs: Int = Int(LogConfiguration(clusterID: 1).replicatedSyncDelayNanos / 1_000_000)

    private var chosenMethods: [LogAppendMethod] {
        LogAppendMethod.allCases.filter { method in methods.split(separator: ",").contains { $0 == method.rawValue } }
    }

    func run() throws {
        try requireIOUring()
        let scratch = try makeScratchDirectory(in: dir)
        defer { removeScratchDirectory(scratch) }
        let bytes = quick ? Int64(64 << 20) : Int64(gib * Double(1 << 30))
        let needed = bytes + 4 * (Int64(segmentMiB) << 20)
        let free = freeBytes(at: scratch)
        guard free >= needed else {
            throw BenchmarkError("keel bench log: needs \(needed >> 20) MiB free in \(dir), has \(free >> 20) MiB; use --dir or --gib")
        }
        let machine = MachineDescription.current(directory: scratch)
        print("keel bench log — \(machine.cpuModel), \(machine.cores) cores, kernel \(machine.kernel), \(machine.fileSystem) at \(dir)")
        print("free space \(free >> 30) GiB; \(bytes >> 20) MiB per throughput series; segments of \(segmentMiB) MiB")
        guard let method = IOUringStorage.PreallocationMethod(rawValue: preallocation) else {
            throw BenchmarkError("--preallocation must be fallocate or zeroFill")
        }
        print("segments preallocated by \(method.rawValue); \(runs) run(s) per series")
        let bench = LogBenchmark(
            scratch: scratch, segmentBytes: Int64(segmentMiB) << 20, quick: quick, preallocation: method,
            gatherMinimumBytes: gatherMinimum, replicatedSyncBytes: Int64(syncKiB) << 10,
            replicatedSyncDelayNanos: Int64(syncDelayMs) * 1_000_000)
        guard runs >= 1 else { throw BenchmarkError("--runs must be at least 1") }

        let chosen = Set(series.split(separator: ",").map(String.init))
        if chosen.contains("replicated") { try runReplicated(bench, bytes: bytes) }
        if chosen.contains("durable") { try runDurable(bench, bytes: bytes) }
        if chosen.contains("group") { try runGroupCommit(bench) }
    }

    private func runReplicated(_ bench: LogBenchmark, bytes: Int64) throws {
        print("\n== replicated: appends of N frames, no wait for fdatasync (background sync, one in flight)")
        print("   baselines: pwrite alone (the issue's), and pwrite with the log's background sync policy (a thread runs")
        print("   fdatasync once \(syncKiB) KiB are unsynced, one at a time); cpu: the appending thread's CPU time per byte")
        // 32 B: 1,000 frames per append; larger payloads: about 106 KiB per append (100 frames of 1 KiB).
        let sizes = payloads.split(separator: ",").compactMap { Int($0) }
        for (payload, frames) in sizes.map({ ($0, $0 <= 32 ? 1000 : max(1, 108_800 / LogFormat.aligned(64 + $0))) }) {
            for method in chosenMethods {
                var ratios: [Double] = [], syncedRatios: [Double] = [], cpuRatios: [Double] = []
                for run in 1...runs {
                    // Baselines and log alternate run by run, so a change in the machine's load hits all.
                    let frameBytes = LogFormat.aligned(64 + payload)
                    let baseline = try bench.baselineWrite(totalBytes: bytes, frameBytes: frameBytes, framesPerWrite: frames)
                    let synced = try bench.baselineWrite(
                        totalBytes: bytes, frameBytes: frameBytes, framesPerWrite: frames, backgroundSyncBytes: bench.replicatedSyncBytes,
                        backgroundSyncDelayNanos: bench.replicatedSyncDelayNanos)
                    let result = try bench.replicated(totalBytes: bytes, payloadBytes: payload, framesPerAppend: frames, method: method)
                    ratios.append(result.megabytesPerSecond / baseline.megabytesPerSecond)
                    syncedRatios.append(result.megabytesPerSecond / synced.megabytesPerSecond)
                    cpuRatios.append(result.cpuMegabytesPerSecond / baseline.cpuMegabytesPerSecond)
                    let label = padRight("\(payload) B × \(frames)/append, \(method.rawValue)", 34)
                    print("  \(label) \(result.summary)  |  pwrite \(baseline.summary)  |  pwrite + background sync \(synced.summary)\(runs > 1 ? "  (run \(run))" : "")")
                    print("  \(padRight("", 34)) -> \(percent(ratios.last!)) of pwrite, \(percent(syncedRatios.last!)) of pwrite + background sync; cpu \(formatFixed(result.cpuNanosPerKiB, decimals: 0)) ns/KiB against \(formatFixed(baseline.cpuNanosPerKiB, decimals: 0)) (\(formatFixed(synced.cpuNanosPerKiB, decimals: 0)) with sync) -> \(percent(cpuRatios.last!))")
                }
                if runs > 1 {
                    print("  \(padRight("", 34)) median of \(runs) runs: \(percent(median(ratios))) of pwrite MB/s, \(percent(median(syncedRatios))) of pwrite + background sync, \(percent(median(cpuRatios))) of pwrite's CPU MB/s")
                }
            }
        }

    }

    private func runDurable(_ bench: LogBenchmark, bytes: Int64) throws {
        print("\n== durable: one append, then wait until fdatasync covers it (closed loop)")
        for appendBytes in [4 << 10, 64 << 10, 1 << 20] {
            let total = quick ? Int64(16 << 20) : min(bytes, Int64(appendBytes) * (appendBytes <= 4096 ? 20_000 : 4_000))
            let baseline = try bench.baselineWrite(totalBytes: total, frameBytes: appendBytes, framesPerWrite: 1, sync: true)
            for method in chosenMethods {
                let result = try bench.durable(totalBytes: total, appendBytes: appendBytes, method: method)
                print("  \(padRight("\(appendBytes >> 10) KiB appends, \(method.rawValue)", 34)) \(result.summary)  |  baseline pwrite+fdatasync \(baseline.summary)  ->  \(formatFixed(100 * result.megabytesPerSecond / baseline.megabytesPerSecond, decimals: 0))%")
            }
        }

    }

    private func runGroupCommit(_ bench: LogBenchmark) throws {
        print("\n== group commit: 32-byte frames offered open-loop; latency from intended send to durable")
        var ratios: [String: [Double]] = [:]
        for run in 1...runs {
            if runs > 1 { print("  run \(run):") }
            // The fdatasync baseline in the same kind of file as the segments (and, for comparison, the other kind).
            let sync = try bench.syncLatency(operations: quick ? 300 : 2000, preallocation: bench.baselinePreallocation)
            let other: Preallocation = bench.baselinePreallocation == .zeroFilled ? .fallocated : .zeroFilled
            let otherSync = try bench.syncLatency(operations: quick ? 300 : 2000, preallocation: other)
            let writeThrough = try bench.syncLatency(operations: quick ? 300 : 2000, preallocation: bench.baselinePreallocation, writeThrough: true)
            print("  fdatasync baseline (4 KiB pwrite + fdatasync, \(bench.baselinePreallocation.rawValue) file): p50 \(micros(sync.p50Nanos)) µs, p99 \(micros(sync.p99Nanos)) µs, p99.9 \(micros(sync.p999Nanos)) µs  (\(other.rawValue) file: p50 \(micros(otherSync.p50Nanos)) µs, p99 \(micros(otherSync.p99Nanos)) µs; O_DSYNC pwrite, \(bench.baselinePreallocation.rawValue): p50 \(micros(writeThrough.p50Nanos)) µs, p99 \(micros(writeThrough.p99Nanos)) µs)")
            for rate in [10_000, 100_000, 1_000_000] {
                for method in chosenMethods {
                    let result = try bench.groupCommit(framesPerSecond: rate, seconds: quick ? 1 : seconds, method: method)
                    let latency = result.latency
                    let ratio = Double(latency.p99Nanos) / Double(max(1, sync.p99Nanos))
                    ratios["\(padLeft("\(rate)", 9))/s \(padRight(method.rawValue, 10))", default: []].append(ratio)
                    print("  \(padLeft("\(rate)", 9))/s \(padRight(method.rawValue, 10)) sustained \(padLeft(formatFixed(result.sustainedFramesPerSecond, decimals: 0), 9))/s  p50 \(micros(latency.p50Nanos)) µs  p99 \(micros(latency.p99Nanos)) µs  p99.9 \(micros(latency.p999Nanos)) µs  (p99 = \(formatFixed(ratio, decimals: 1))× fdatasync p99; \(result.syncs) syncs)")
                    print("  \(padLeft("", 22)) wait for sync p50 \(micros(result.waitForSync.p50Nanos)) p99 \(micros(result.waitForSync.p99Nanos)) µs; in sync p50 \(micros(result.inSync.p50Nanos)) p99 \(micros(result.inSync.p99Nanos)) µs; the log's syncs p50 \(micros(result.syncDuration.p50Nanos)) p99 \(micros(result.syncDuration.p99Nanos)) µs, \(formatFixed(result.meanBytesPerSync / 1024, decimals: 1)) KiB each")
                }
            }
        }
        if runs > 1 {
            print("  median over \(runs) runs of p99 / same-run fdatasync p99:")
            for (label, values) in ratios.sorted(by: { $0.key < $1.key }) {
                print("  \(label) \(formatFixed(median(values), decimals: 2))×  (runs: \(values.map { formatFixed($0, decimals: 2) }.joined(separator: ", ")))")
            }
        }
    }
}

private func percent(_ ratio: Double) -> String { "\(formatFixed(100 * ratio, decimals: 0))%" }

/// The middle value (the mean of the two middle ones for an even count).
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
}

/// Bytes and time of one throughput series.
struct ThroughputResult {
    var bytes: Int64
    var frames: Int64
    var nanos: Int64
    /// The measuring thread's CPU time over the same span.
    var cpuNanos: Int64 = 0
    var megabytesPerSecond: Double { Double(bytes) / 1e6 / (Double(nanos) / 1e9) }
    var cpuMegabytesPerSecond: Double { Double(bytes) / 1e6 / (Double(max(1, cpuNanos)) / 1e9) }
    var cpuNanosPerKiB: Double { Double(cpuNanos) / (Double(bytes) / 1024) }
    var framesPerSecond: Double { Double(frames) / (Double(nanos) / 1e9) }
    var summary: String {
        "\(padLeft(formatFixed(megabytesPerSecond, decimals: 0), 6)) MB/s \(padLeft(formatFixed(framesPerSecond / 1e6, decimals: 2), 7)) M frames/s"
    }
}

/// The measurements behind `keel bench log`, each in its own folder under `scratch`, removed after.
struct LogBenchmark {
    let scratch: String
    let segmentBytes: Int64
    let quick: Bool
    let preallocation: IOUringStorage.PreallocationMethod
    /// The log's `gatherPayloadMinimumBytes` and `replicatedSyncBytes`.
    let gatherMinimumBytes: Int
    let replicatedSyncBytes: Int64
    let replicatedSyncDelayNanos: Int64

    /// The log's segments are prepared the way the storage preallocates: zero-filled in the background, or fallocate'd.
    var segmentPreallocation: LogSegmentPreallocation { preallocation == .zeroFill ? .zeroFill : .allocate }
    /// The baselines' files are prepared like the log's segments (before their timing starts).
    var baselinePreallocation: Preallocation { preallocation == .zeroFill ? .zeroFilled : .fallocated }

    private func withLog<R>(
        _ label: String, durability: DurabilityMode, method: LogAppendMethod, maxPayloadBytes: Int = 1 << 20,
        _ body: (ReplicatedLog<IOUringStorage>) throws -> R
    ) throws -> R {
        let folder = scratch + "/" + label
        defer { removeScratchDirectory(folder) }
        let storage = try IOUringStorage(directory: folder, ring: try Ring(), preallocationMethod: preallocation)
        var configuration = LogConfiguration(
            clusterID: 1, segmentLengthBytes: segmentBytes, maxPayloadBytes: maxPayloadBytes, durability: durability,
            appendMethod: method, stagingBufferBytes: 4 << 20, gatherPayloadMinimumBytes: gatherMinimumBytes,
            segmentPreallocation: segmentPreallocation)
        configuration.replicatedSyncBytes = replicatedSyncBytes
        configuration.replicatedSyncDelayNanos = replicatedSyncDelayNanos
        let log = try ReplicatedLog(storage: storage, configuration: configuration)
        return try body(log)
    }

    /// Appends `framesPerAppend` frames per batch until `totalBytes` of frames are written, polling
    /// the background sync after each commit; the time stops at the last commit.
    func replicated(totalBytes: Int64, payloadBytes: Int, framesPerAppend: Int, method: LogAppendMethod) throws -> ThroughputResult {
        try withLog("replicated-\(payloadBytes)-\(method.rawValue)", durability: .replicated, method: method) { log in
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: payloadBytes, alignment: 8)
            defer { payload.deallocate() }
            payload.initializeMemory(as: UInt8.self, repeating: 0x3C)
            let frameBytes = Int64(LogFormat.aligned(64 + payloadBytes))
            let frames = totalBytes / frameBytes
            var header = LogEntryHeader(type: .sessionMessage, sessionID: 1)
            let startCPU = threadCPUNanos()
            let start = monotonicNanos()
            var written: Int64 = 0
            while written < frames {
                let count = min(Int64(framesPerAppend), frames - written)
                for index in 0..<count {
                    header.correlationID = written + index
                    try log.append(term: Term(1), header, payload: UnsafeRawBufferPointer(payload))
                }
                try log.commitBatch()
                try log.poll(nowNanos: monotonicNanos())  // as the consensus agent does: syncs batched by bytes and age
                written += count
            }
            let nanos = monotonicNanos() - start
            let cpuNanos = threadCPUNanos() - startCPU
            _ = try log.waitUntilDurable(log.appendedPosition, timeoutNanos: 120_000_000_000)
            return ThroughputResult(bytes: frames * frameBytes, frames: frames, nanos: nanos, cpuNanos: cpuNanos)
        }
    }

    /// One frame of `appendBytes` (header included) per append; waits for durability after each.
    func durable(totalBytes: Int64, appendBytes: Int, method: LogAppendMethod) throws -> ThroughputResult {
        try withLog("durable-\(appendBytes)-\(method.rawValue)", durability: .durable, method: method) { log in
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: appendBytes - 64, alignment: 8)
            defer { payload.deallocate() }
            payload.initializeMemory(as: UInt8.self, repeating: 0x5D)
            let appends = totalBytes / Int64(appendBytes)
            let start = monotonicNanos()
            for index in 0..<appends {
                try log.append(term: Term(1), LogEntryHeader(type: .sessionMessage, correlationID: index), payload: UnsafeRawBufferPointer(payload))
                let end = try log.commitBatch()
                while log.durablePosition < end {
                    if try log.poll() == 0 { try log.storage.waitForCompletions(timeoutNanos: 10_000_000) }
                }
            }
            let nanos = monotonicNanos() - start
            return ThroughputResult(bytes: appends * Int64(appendBytes), frames: appends, nanos: nanos)
        }
    }

    /// The baseline: the same bytes with plain `pwrite` (one call per `framesPerWrite` frames), into
    /// one file prepared like the log's segments, with an `fdatasync` after each write when `sync`,
    /// or, with `backgroundSyncBytes`, on another thread as the log's replicated mode syncs.
    func baselineWrite(
        totalBytes: Int64, frameBytes: Int, framesPerWrite: Int, sync: Bool = false, backgroundSyncBytes: Int64? = nil,
        backgroundSyncDelayNanos: Int64 = 20_000_000
    ) throws -> ThroughputResult {
        let path = scratch + "/baseline.dat"
        let file = try PlainFile(path: path)
        defer { file.close(); unlink(path) }
        let writeBytes = frameBytes * framesPerWrite
        let writes = totalBytes / Int64(writeBytes)
        try baselinePreallocation.prepare(file, bytes: writes * Int64(writeBytes))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: writeBytes, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x3C)
        let syncer = backgroundSyncBytes.map { BackgroundSyncer(descriptor: file.descriptor, thresholdBytes: $0, delayNanos: backgroundSyncDelayNanos) }
        syncer?.start()
        let startCPU = threadCPUNanos()
        let start = monotonicNanos()
        for index in 0..<writes {
            try file.writeFully(UnsafeRawBufferPointer(buffer), at: index * Int64(writeBytes))
            if sync { try file.datasync() }
            syncer?.written.store((index + 1) * Int64(writeBytes), ordering: .releasing)
        }
        let nanos = monotonicNanos() - start
        let cpuNanos = threadCPUNanos() - startCPU
        syncer?.stop()
        return ThroughputResult(bytes: writes * Int64(writeBytes), frames: writes * Int64(framesPerWrite), nanos: nanos, cpuNanos: cpuNanos)
    }

    /// 4 KiB pwrite + fdatasync latency, sequential in a file prepared by `preallocation`; with
    /// `writeThrough`, each pwrite to an O_DSYNC file is its own sync (as RWF_DSYNC: the kernel
    /// runs the same datasync after the write) and no fdatasync is called.
    func syncLatency(operations: Int, preallocation: Preallocation, writeThrough: Bool = false) throws -> LatencySummary {
        let path = scratch + "/sync.dat"
        let file = try PlainFile(path: path, extraFlags: writeThrough ? O_DSYNC : 0)
        defer { file.close(); unlink(path) }
        try preallocation.prepare(file, bytes: Int64(operations) * 4096)
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0x11)
        var histogram = LatencySummary.makeHistogram()
        for index in 0..<operations {
            let start = monotonicNanos()
            try file.writeFully(UnsafeRawBufferPointer(buffer), at: Int64(index) * 4096)
            if !writeThrough { try file.datasync() }
            histogram.record(UInt64(monotonicNanos() - start))
        }
        return LatencySummary(histogram)
    }

    struct GroupCommitResult {
        var latency: LatencySummary
        var sustainedFramesPerSecond: Double
        var syncs: Int
        /// Each frame's latency in two parts: from its due time until the fdatasync covering it was
        /// submitted (waiting behind the sync in flight), and from that submission until it was reaped.
        var waitForSync: LatencySummary
        var inSync: LatencySummary
        /// Each of the log's fdatasyncs, submission to reaping, and the bytes it covered.
        var syncDuration: LatencySummary
        var meanBytesPerSync: Double
    }

    /// Open-loop producer: frame i is due at start + i/rate; every duty cycle appends what is due as
    /// one batch, polls, and records each frame's latency from its due time once it is durable.
    func groupCommit(framesPerSecond: Int, seconds: Double, method: LogAppendMethod) throws -> GroupCommitResult {
        try withLog("group-\(framesPerSecond)-\(method.rawValue)", durability: .durable, method: method) { log in
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 8)
            defer { payload.deallocate() }
            payload.initializeMemory(as: UInt8.self, repeating: 0x42)
            let intervalNanos = 1e9 / Double(framesPerSecond)
            let total = Int64(Double(framesPerSecond) * seconds)
            // Batches waiting for durability: (end position, first frame number, frame count).
            let capacity = 1 << 20
            var ends = [Int64](repeating: 0, count: capacity)
            var firsts = [Int64](repeating: 0, count: capacity)
            var counts = [Int64](repeating: 0, count: capacity)
            var submitted = [Int64](repeating: 0, count: capacity)  // when the sync covering the batch was submitted
            var head = 0, tail = 0, uncovered = 0
            var histogram = LatencySummary.makeHistogram()
            var waitHistogram = LatencySummary.makeHistogram(), inSyncHistogram = LatencySummary.makeHistogram()
            var syncHistogram = LatencySummary.makeHistogram()
            var syncStartNanos: Int64 = 0, syncStartDurable: Int64 = 0, syncedBytes: Int64 = 0
            // A sync that started since the last look covers every batch committed before it.
            func noteSyncStart(at now: Int64) {
                guard log.syncInFlight, syncStartNanos == 0 else { return }
                syncStartNanos = now
                syncStartDurable = log.durablePosition.rawValue
                while uncovered < tail { submitted[uncovered % capacity] = now; uncovered += 1 }
            }
            var sent: Int64 = 0, syncs = 0
            var lastDurableNanos: Int64 = 0
            let start = monotonicNanos()
            while true {
                var now = monotonicNanos()
                let due = min(total, Int64(Double(now - start) / intervalNanos) + 1)
                if due > sent && tail - head < capacity {
                    let count = min(due - sent, 50_000)
                    for index in 0..<count {
                        try log.append(term: Term(1), LogEntryHeader(type: .sessionMessage, correlationID: sent + index), payload: UnsafeRawBufferPointer(payload))
                    }
                    ends[tail % capacity] = try log.commitBatch().rawValue
                    firsts[tail % capacity] = sent
                    counts[tail % capacity] = count
                    tail += 1
                    sent += count
                    noteSyncStart(at: monotonicNanos())
                }
                let previousDurable = log.durablePosition.rawValue
                let work = try log.poll()
                now = monotonicNanos()
                let durable = log.durablePosition.rawValue
                if durable > previousDurable {
                    syncs += 1
                    syncHistogram.record(UInt64(max(0, now - syncStartNanos)))
                    syncedBytes += durable - syncStartDurable
                    syncStartNanos = 0
                }
                noteSyncStart(at: now)
                while head < tail && ends[head % capacity] <= durable {
                    let submittedNanos = submitted[head % capacity]
                    for frame in firsts[head % capacity]..<firsts[head % capacity] + counts[head % capacity] {
                        let intended = start + Int64(Double(frame) * intervalNanos)
                        histogram.record(UInt64(max(0, now - intended)))
                        waitHistogram.record(UInt64(max(0, submittedNanos - intended)))
                        inSyncHistogram.record(UInt64(max(0, now - submittedNanos)))
                    }
                    head += 1
                    lastDurableNanos = now
                }
                if sent == total && head == tail { break }
                if work == 0 && due == sent && framesPerSecond <= 100_000 {
                    let nextDueNanos = start + Int64(Double(sent) * intervalNanos) - now
                    try log.storage.waitForCompletions(timeoutNanos: max(10_000, min(nextDueNanos, 1_000_000)))
                }
            }
            let elapsed = Double(lastDurableNanos - start) / 1e9
            return GroupCommitResult(
                latency: LatencySummary(histogram), sustainedFramesPerSecond: Double(total) / elapsed, syncs: syncs,
                waitForSync: LatencySummary(waitHistogram), inSync: LatencySummary(inSyncHistogram),
                syncDuration: LatencySummary(syncHistogram), meanBytesPerSync: Double(syncedBytes) / Double(max(1, syncs)))
        }
    }
}

/// The replicated baseline's stand-in for the log's background sync: a thread that runs fdatasync
/// whenever `thresholdBytes` were written since the last one began, or `delayNanos` after an unsynced write
/// (one at a time, as the log's `replicatedSyncBytes` / `replicatedSyncDelayNanos`).
final class BackgroundSyncer: Sendable {
    let written = Atomic<Int64>(0)
    private let stopping = Atomic<Bool>(false)
    private let finished = Atomic<Bool>(false)
    private let descriptor: Int32
    private let thresholdBytes: Int64
    private let delayNanos: Int64

    init(descriptor: Int32, thresholdBytes: Int64, delayNanos: Int64) {
        self.descriptor = descriptor
        self.thresholdBytes = thresholdBytes
        self.delayNanos = delayNanos
    }

    func start() {
        Thread.detachNewThread { [self] in
            var synced: Int64 = 0
            var unsyncedSince: Int64?
            while !stopping.load(ordering: .acquiring) {
                let now = written.load(ordering: .acquiring)
                let clock = monotonicNanos()
                if now > synced && unsyncedSince == nil { unsyncedSince = clock }
                if now - synced >= thresholdBytes || (now > synced && clock - unsyncedSince! >= delayNanos) {
                    _ = fdatasync(descriptor)
                    synced = now
                    unsyncedSince = nil
                } else {
                    usleep(50)
                }
            }
            finished.store(true, ordering: .releasing)
        }
    }

    /// Stops the thread (after the sync under way) and waits for it.
    func stop() {
        stopping.store(true, ordering: .releasing)
        while !finished.load(ordering: .acquiring) { usleep(100) }
    }
}
