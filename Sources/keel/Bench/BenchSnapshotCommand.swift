import ArgumentParser
import Glibc
import KeelArchive
import KeelCore
import KeelIO

/// `keel bench snapshot`: writing and loading a snapshot through `KeelArchive` against raw sequential
/// `pwrite` + `fdatasync` and `pread` of the same number of bytes in the same run (issue 9, §4: goal
/// at least 80% of raw).
struct BenchSnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Measure snapshot write+fdatasync and load rates against raw write+fdatasync and read of the same bytes.",
        discussion: """
            The snapshot holds a small consensus section and a service section of --gib GiB, handed to the \
            writer in --piece-bytes pieces (as a service writing one record at a time would). Its write time runs \
            from beginSnapshot to the return of finish() (trailer, fdatasync, rename, directory fsync, catalog). \
            The baseline writes the same number of bytes with pwrite in chunk-sized calls into a new file, then \
            one fdatasync. Loading is newestValidSnapshot() (a full verification pass: every chunk CRC and the \
            whole-file CRC) then streaming the service section back through its reader (each chunk's CRC checked \
            again); the baseline reads the raw file with pread in chunk-sized calls. With --cold (the default) \
            both files are dropped from the page cache (posix_fadvise DONTNEED) before each read. Raw and \
            snapshot series alternate which goes first run by run; the reads start after a sync(2) and a \
            2-second pause, and each is done twice (raw, snapshot, raw, snapshot), the second counting; the \
            median run is reported.
            """)

    @Option(help: "Size of the service state in GiB.")
    var gib: Double = 1
    @Option(name: .customLong("chunk-kib"), help: "Chunk payload in KiB (one CRC each; the writer's and readers' buffer size).")
    var chunkKiB: Int = 1024
    @Option(name: .customLong("piece-bytes"), help: "Bytes per write call made by the \"service\".")
    var pieceBytes: Int = 1024
    @Option(help: "Runs of each series; the median is reported.")
    var runs: Int = 5
    @Option(help: "Folder on the disk to measure (a scratch folder is made inside it).")
    var dir: String = "."
    @Flag(inversion: .prefixedNo, help: "Drop both files from the page cache before each read.")
    var cold = true
    @Flag(help: "A short smoke run (64 MiB, one run); its figures are not for recording.")
    var quick = false

    func run() throws {
        try requireIOUring()
        guard runs >= 1, pieceBytes >= 1, chunkKiB >= 4 else { throw ValidationError("--runs, --piece-bytes must be positive; --chunk-kib at least 4") }
        let scratch = try makeScratchDirectory(in: dir)
        defer { removeScratchDirectory(scratch) }
        let free = freeBytes(at: scratch)
        guard free >= 2 * stateBytes + (256 << 20) else {
            throw BenchmarkError("keel bench snapshot: needs \((2 * stateBytes) >> 20) MiB free in \(dir), has \(free >> 20) MiB; use --dir or --gib")
        }
        let machine = MachineDescription.current(directory: scratch)
        print("keel bench snapshot — \(machine.cpuModel), \(machine.cores) cores, kernel \(machine.kernel), \(machine.fileSystem) at \(dir), \(machine.date)")
        print("service state \(stateBytes >> 20) MiB in \(pieceBytes)-byte pieces; chunks of \(chunkKiB) KiB; \(quick ? 1 : runs) run(s); reads \(cold ? "cold (page cache dropped)" : "warm")")

        let bench = try SnapshotBenchmark(scratch: scratch, stateBytes: stateBytes, chunkBytes: chunkKiB << 10, pieceBytes: pieceBytes, cold: cold)
        var results: [SnapshotBenchmark.Run] = []
        for run in 1...(quick ? 1 : runs) {
            let result = try bench.runOnce(index: run)
            results.append(result)
            print("  run \(run): \(result.line)")
        }
        let middle = results.sorted { $0.writeRatio < $1.writeRatio }[results.count / 2]
        let middleRead = results.sorted { $0.loadRatio < $1.loadRatio }[results.count / 2]
        print("\nmedian of \(results.count) run(s), MB/s (10^6 bytes per second of the service state's size):")
        print("  write+fdatasync  snapshot \(mbps(middle.snapshotWriteNanos))  |  raw pwrite+fdatasync \(mbps(middle.rawWriteNanos))  ->  \(percent(middle.writeRatio)) of raw")
        print("  load             snapshot \(mbps(middleRead.verifyNanos + middleRead.streamNanos)) (verify pass \(mbps(middleRead.verifyNanos)), stream pass \(mbps(middleRead.streamNanos)))  |  raw pread \(mbps(middleRead.rawReadNanos))  ->  \(percent(middleRead.loadRatio)) of raw")
        print("  verify pass alone \(percent(middleRead.verifyRatio)) of raw read")
    }

    private func mbps(_ nanos: Int64) -> String {
        formatFixed(Double(stateBytes) / Double(max(1, nanos)) * 1000, decimals: 0)
    }

    private var stateBytes: Int64 { quick ? Int64(64 << 20) : Int64(gib * Double(1 << 30)) }
    private func percent(_ ratio: Double) -> String { "\(formatFixed(100 * ratio, decimals: 0))%" }
}

/// The measured series of `keel bench snapshot`.
final class SnapshotBenchmark {
    let scratch: String
    let stateBytes: Int64
    let chunkBytes: Int
    let pieceBytes: Int
    let cold: Bool
    /// Bytes the "service" hands over, reused cyclically (64 MiB of pseudo-random bytes).
    private let source: UnsafeMutableRawBufferPointer
    private let consensusBytes = 64 << 10
    private var position: Int64 = 4096
    /// How long the last snapshot's `finish()` took (trailer, fdatasync, rename, directory fsync, catalog).
    private var lastFinishNanos: Int64 = 0
    private var lastRawSyncNanos: Int64 = 0

    struct Run {
        var snapshotWriteNanos: Int64
        var rawWriteNanos: Int64
        var finishNanos: Int64
        var rawSyncNanos: Int64
        var verifyNanos: Int64
        var streamNanos: Int64
        var rawReadNanos: Int64
        var cpu: CPUFigures
        var writeRatio: Double { Double(rawWriteNanos) / Double(snapshotWriteNanos) }
        var loadRatio: Double { Double(rawReadNanos) / Double(verifyNanos + streamNanos) }
        var verifyRatio: Double { Double(rawReadNanos) / Double(verifyNanos) }
        var line: String {
            func ms(_ nanos: Int64) -> String { formatFixed(Double(nanos) / 1e6, decimals: 0) }
            return "write \(ms(snapshotWriteNanos)) ms (finish \(ms(finishNanos))) vs raw \(ms(rawWriteNanos)) ms (fdatasync \(ms(rawSyncNanos))) (\(formatFixed(100 * writeRatio, decimals: 0))%); "
                + "load \(ms(verifyNanos)) + \(ms(streamNanos)) ms vs raw read \(ms(rawReadNanos)) ms (\(formatFixed(100 * loadRatio, decimals: 0))%); "
                + "CPU ms: write \(ms(cpu.snapshotWrite)) vs \(ms(cpu.rawWrite)), load \(ms(cpu.load)) vs \(ms(cpu.rawRead))"
        }
    }

    /// CPU time (user + system) each series took: independent of how busy the machine's other processes keep it.
    struct CPUFigures {
        var snapshotWrite: Int64
        var rawWrite: Int64
        var load: Int64
        var rawRead: Int64
    }

    init(scratch: String, stateBytes: Int64, chunkBytes: Int, pieceBytes: Int, cold: Bool) throws {
        self.scratch = scratch
        self.stateBytes = stateBytes
        self.chunkBytes = chunkBytes
        self.pieceBytes = pieceBytes
        self.cold = cold
        source = .allocate(byteCount: 64 << 20, alignment: 4096)
        var random = SeededRandom(seed: 42)
        let words = source.bindMemory(to: UInt64.self)
        for index in words.indices { words[index] = random.next() }
    }

    deinit { source.deallocate() }

    /// Raw and snapshot writes, a pause for the disk to settle, raw read and snapshot load; raw goes
    /// first in odd runs and second in even ones. Both files are removed afterwards.
    func runOnce(index: Int) throws -> Run {
        let storage = try IOUringStorage(directory: scratch, ring: try Ring(), createDirectory: false)
        let archive = try SnapshotArchive(storage: storage, configuration: ArchiveConfiguration(chunkPayloadBytes: chunkBytes))
        let rawPath = scratch + "/raw.bin"
        let rawFirst = index % 2 == 1

        var rawWriteNanos: Int64 = 0, snapshotWriteNanos: Int64 = 0, rawWriteCPUNanos: Int64 = 0, snapshotWriteCPUNanos: Int64 = 0
        var rawReadCPUNanos: Int64 = 0, loadCPUNanos: Int64 = 0
        var entry: SnapshotEntry?
        for step in 0..<2 {
            if (step == 0) == rawFirst {
                rawWriteNanos = try timed { try writeRaw(path: rawPath) }
                rawWriteCPUNanos = lastCPUNanos
            } else {
                snapshotWriteNanos = try timed { entry = try writeSnapshot(archive) }
                snapshotWriteCPUNanos = lastCPUNanos
            }
        }
        let snapshotPath = scratch + "/" + entry!.fileName
        // The VM's disk keeps writing back for a while after fdatasync returns; reads started at once
        // were measured 3-6x slower, whichever file came first.
        sync()
        usleep(2_000_000)

        var rawReadNanos: Int64 = 0, verifyNanos: Int64 = 0, streamNanos: Int64 = 0
        // Each read twice, alternating, keeping the second: the first read after the writes was measured
        // costing several times the CPU of any later one (page reclaim in this VM), whichever file it read.
        for step in 0..<4 {
            if cold { dropFromPageCache(rawPath); dropFromPageCache(snapshotPath) }
            if (step % 2 == 0) == rawFirst {
                rawReadNanos = try timed { try readRaw(path: rawPath) }
                rawReadCPUNanos = lastCPUNanos
            } else {
                var load: SnapshotLoad<IOUringStorage>?
                verifyNanos = try timed {
                    load = archive.newestValidSnapshot()
                    guard load?.entry == entry else { throw BenchmarkError("the snapshot just written did not verify: \(archive.rejectedSnapshots)") }
                }
                loadCPUNanos = lastCPUNanos
                streamNanos = try timed { try stream(load!) }
                loadCPUNanos += lastCPUNanos
                load!.close()
            }
        }
        try archive.removeSnapshots(keepingNewest: 0)
        unlink(rawPath)
        return Run(
            snapshotWriteNanos: snapshotWriteNanos, rawWriteNanos: rawWriteNanos, finishNanos: lastFinishNanos, rawSyncNanos: lastRawSyncNanos,
            verifyNanos: verifyNanos, streamNanos: streamNanos, rawReadNanos: rawReadNanos,
            cpu: CPUFigures(snapshotWrite: snapshotWriteCPUNanos, rawWrite: rawWriteCPUNanos, load: loadCPUNanos, rawRead: rawReadCPUNanos))
    }

    /// CPU time (user + system, this process) of the last `timed` body.
    private var lastCPUNanos: Int64 = 0

    private func timed(_ body: () throws -> Void) throws -> Int64 {
        let cpuStart = processCPUNanos()
        let start = monotonicNanos()
        try body()
        let elapsed = monotonicNanos() - start
        lastCPUNanos = processCPUNanos() - cpuStart
        return elapsed
    }

    private func writeSnapshot(_ archive: SnapshotArchive<IOUringStorage>) throws -> SnapshotEntry {
        position += 4096
        let writing = try archive.beginSnapshot(SnapshotHeader(
            serviceVersion: 1, clusterID: 1, term: Term(1), position: LogPosition(position), timestamp: ClusterTime(rawValue: position), memberID: MemberID(0)))
        try writing.beginSection(.consensusState)
        try writing.append(UnsafeRawBufferPointer(rebasing: source[0..<consensusBytes]))
        try writing.beginSection(.serviceState)
        var written: Int64 = 0
        var offset = 0
        while written < stateBytes {
            let count = Int(min(Int64(pieceBytes), stateBytes - written))
            if offset + count > source.count { offset = 0 }
            try writing.append(UnsafeRawBufferPointer(rebasing: source[offset..<(offset + count)]))
            offset += count
            written += Int64(count)
        }
        let streamed = monotonicNanos()
        let entry = try writing.finish()
        lastFinishNanos = monotonicNanos() - streamed
        return entry
    }

    private func writeRaw(path: String) throws {
        let file = try PlainFile(path: path)
        defer { file.close() }
        var written: Int64 = 0
        var offset = 0
        while written < stateBytes {
            let count = Int(min(Int64(chunkBytes), stateBytes - written))
            if offset + count > source.count { offset = 0 }
            try file.writeFully(UnsafeRawBufferPointer(rebasing: source[offset..<(offset + count)]), at: written)
            offset += count
            written += Int64(count)
        }
        let syncStart = monotonicNanos()
        try file.datasync()
        lastRawSyncNanos = monotonicNanos() - syncStart
    }

    private func readRaw(path: String) throws {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw IOError(.open, errno: errno, subject: path) }
        defer { close(descriptor) }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: chunkBytes, alignment: 4096)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let count = pread(descriptor, buffer.baseAddress!, chunkBytes, off_t(total))
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw IOError(.read, errno: errno, subject: path) }
            if count == 0 { break }
            total += Int64(count)
        }
        guard total == stateBytes else { throw BenchmarkError("raw read \(total) bytes, wrote \(stateBytes)") }
    }

    private func stream(_ load: SnapshotLoad<IOUringStorage>) throws {
        guard let reader = try load.reader(for: .serviceState) else { throw BenchmarkError("no service section") }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 4096)
        defer { buffer.deallocate() }
        var total: Int64 = 0
        while true {
            let count = try reader.readBytes(into: buffer)
            if count == 0 { break }
            total += Int64(count)
        }
        guard total == stateBytes else { throw BenchmarkError("loaded \(total) bytes, wrote \(stateBytes)") }
    }

    private func dropFromPageCache(_ path: String) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return }
        _ = posix_fadvise(descriptor, 0, 0, POSIX_FADV_DONTNEED)
        close(descriptor)
    }
}
