import Glibc
import Histogram
import KeelCore
import KeelIO

/// The measurements of `keel bench io` (issue 2 §4): how fast this machine's disk takes writes and
/// syncs through Keel's io_uring ring, against plain syscalls on the calling thread measured in the
/// same run, and which way of getting log appends into the page cache is cheapest.
final class IOBenchmark {
    struct Sizes {
        var syncOps: Int
        var sequentialBytes: Int64
        var smallAppends: Int
        var pageAppends: Int
        var batchAppends: Int
    }

    let directory: String
    let sizes: Sizes
    let storage: IOUringStorage
    private var completions = IOCompletionBuffer(capacity: 64)
    private var nextToken: UInt64 = 1
    private let progress: (String) -> Void

    init(directory: String, sizes: Sizes, progress: @escaping (String) -> Void) throws {
        self.directory = directory
        self.sizes = sizes
        self.progress = progress
        storage = try IOUringStorage(directory: directory, ring: Ring(), createDirectory: false)
    }

    // MARK: write + fdatasync latency

    /// 4 KiB write+fdatasync latencies, one operation at a time, three ways on three files prepared alike.
    struct SyncLatencies {
        /// write and fdatasync both through the ring, linked (two kernel-worker hand-offs on ext4).
        var ringLinked: LatencySummary
        /// `pwrite` on this thread, then fdatasync through the ring: how the log syncs (its bytes are
        /// copied into a mapping, then the ring syncs them).
        var ringDatasync: LatencySummary
        /// The baseline: `pwrite` then `fdatasync`, plain syscalls.
        var plain: LatencySummary
    }

    /// Runs the three ways in rotating order, operation by operation, so all see the same disk conditions
    /// and none always goes first.
    func syncLatency(preallocation: Preallocation) throws -> SyncLatencies {
        let blockBytes = 4096
        let fileBytes = Int64(sizes.syncOps * blockBytes)
        let name = "sync-\(preallocation.rawValue)"
        let (plain, linkedFile) = try makeFilePair(name, preallocation: preallocation, bytes: fileBytes)
        let (plainSpare, datasyncFile) = try makeFilePair(name + "-b", preallocation: preallocation, bytes: fileBytes)
        plainSpare.close()
        defer {
            plain.close(); closeRingFile(linkedFile); closeRingFile(datasyncFile)
            removePair(name); removePair(name + "-b")
        }
        let block = Self.patternBlock(bytes: blockBytes)
        defer { block.deallocate() }
        let bytes = UnsafeRawBufferPointer(block)
        var histograms = [LatencySummary.makeHistogram(), LatencySummary.makeHistogram(), LatencySummary.makeHistogram()]
        for index in 0..<sizes.syncOps {
            let offset = Int64(index * blockBytes)
            for turn in 0..<3 {
                let way = (index + turn) % 3
                let started = monotonicNanos()
                switch way {
                case 0:
                    try ringWrite(linkedFile, at: offset, bytes, thenDatasync: true)
                case 1:
                    try storage.write(datasyncFile, at: offset, bytes)
                    try ringDatasync(datasyncFile)
                default:
                    try plain.writeFully(bytes, at: offset)
                    try plain.datasync()
                }
                _ = histograms[way].record(UInt64(monotonicNanos() - started))
            }
        }
        return SyncLatencies(ringLinked: LatencySummary(histograms[0]), ringDatasync: LatencySummary(histograms[1]), plain: LatencySummary(histograms[2]))
    }

    // MARK: sequential throughput

    struct Throughput: Codable {
        var ringMBps: Double
        var plainMBps: Double
    }

    /// Sequential write+fdatasync of `chunkBytes` chunks until `sequentialBytes`, ring against plain,
    /// alternating chunk by chunk.
    func sequentialThroughput(chunkBytes: Int, preallocation: Preallocation) throws -> Throughput {
        let total = sizes.sequentialBytes - sizes.sequentialBytes % Int64(chunkBytes)
        let name = "seq-\(chunkBytes)-\(preallocation.rawValue)"
        let (plain, ringFile) = try makeFilePair(name, preallocation: preallocation, bytes: total)
        defer { plain.close(); closeRingFile(ringFile); removePair(name) }
        let chunk = Self.patternBlock(bytes: chunkBytes)
        defer { chunk.deallocate() }
        var ringNanos: Int64 = 0
        var plainNanos: Int64 = 0
        var offset: Int64 = 0
        while offset < total {
            var started = monotonicNanos()
            try ringWrite(ringFile, at: offset, UnsafeRawBufferPointer(chunk), thenDatasync: true)
            ringNanos += monotonicNanos() - started
            started = monotonicNanos()
            try plain.writeFully(UnsafeRawBufferPointer(chunk), at: offset)
            try plain.datasync()
            plainNanos += monotonicNanos() - started
            offset += Int64(chunkBytes)
        }
        func megabytesPerSecond(_ nanos: Int64) -> Double { Double(total) / 1e6 / (Double(nanos) / 1e9) }
        return Throughput(ringMBps: megabytesPerSecond(ringNanos), plainMBps: megabytesPerSecond(plainNanos))
    }

    // MARK: append methods

    enum AppendMethod: String, Codable, CaseIterable {
        case ioUringWrite = "io_uring write"
        case pwrite = "pwrite"
        /// Pre-faulted ahead of time, outside the timed loop (the best case: pages faulted off the hot path).
        case mappedCopy = "copy into mapping, pre-faulted"
        /// Pre-faulting counted in the time: the whole cost when a writer must fault its own pages.
        case mappedCopyPrefaultTimed = "copy into mapping + prefault, timed"
        /// No pre-faulting: each fresh page faults (and is zero-filled) on the first store.
        case mappedCopyColdPages = "copy into mapping, not pre-faulted"
    }

    struct AppendCost: Codable {
        var method: AppendMethod
        var appendBytes: Int
        var appends: Int
        var appendsPerSecond: Double
        var cpuMicrosPerAppend: Double
        var wallMicrosPerAppend: Double
    }

    /// Appends of `appendBytes` each into a fallocate'd file, one append at a time, no sync: the cost of
    /// getting bytes into the page cache by each method.
    func appendCost(method: AppendMethod, appendBytes: Int, appends: Int) throws -> AppendCost {
        let fileBytes = Int64(appendBytes * appends)
        let name = "append-\(appendBytes)"
        let plain = try PlainFile(path: path(name))
        try Preallocation.fallocated.prepare(plain, bytes: fileBytes)
        defer { plain.close(); unlink(path(name)) }
        let payload = Self.patternBlock(bytes: appendBytes)
        defer { payload.deallocate() }
        let source = UnsafeRawBufferPointer(payload)

        var run: () throws -> Void
        var cleanup: () -> Void = {}
        switch method {
        case .pwrite:
            run = { for index in 0..<appends { try plain.writeFully(source, at: Int64(index * appendBytes)) } }
        case .ioUringWrite:
            let file = try storage.openFile(name, create: false)
            cleanup = { [storage] in storage.closeFile(file) }
            run = { [self] in
                for index in 0..<appends { try ringWrite(file, at: Int64(index * appendBytes), source, thenDatasync: false) }
            }
        case .mappedCopy, .mappedCopyPrefaultTimed, .mappedCopyColdPages:
            let file = try storage.openFile(name, create: false)
            let mapping = try storage.mapForWriting(file, bytes: Int(fileBytes))
            if method == .mappedCopy { try storage.prefault(UnsafeRawBufferPointer(mapping), forWriting: true) }
            cleanup = { [storage] in storage.unmap(UnsafeRawBufferPointer(mapping)); storage.closeFile(file) }
            let prefaultInTimedLoop = method == .mappedCopyPrefaultTimed
            run = { [storage] in
                if prefaultInTimedLoop { try storage.prefault(UnsafeRawBufferPointer(mapping), forWriting: true) }
                var cursor = mapping.baseAddress!
                for _ in 0..<appends {
                    cursor.copyMemory(from: source.baseAddress!, byteCount: appendBytes)
                    cursor += appendBytes
                }
            }
        }
        defer { cleanup() }
        let cpuBefore = processCPUNanos()
        let started = monotonicNanos()
        try run()
        let wallNanos = monotonicNanos() - started
        let cpuNanos = processCPUNanos() - cpuBefore
        return AppendCost(
            method: method, appendBytes: appendBytes, appends: appends,
            appendsPerSecond: Double(appends) / (Double(wallNanos) / 1e9),
            cpuMicrosPerAppend: Double(cpuNanos) / 1000 / Double(appends),
            wallMicrosPerAppend: Double(wallNanos) / 1000 / Double(appends))
    }

    // MARK: helpers

    /// One write (optionally linked to an fdatasync) through the ring, waited for.
    private func ringWrite(_ file: FileID, at offset: Int64, _ bytes: UnsafeRawBufferPointer, thenDatasync: Bool) throws {
        let token = IOToken(nextToken)
        nextToken &+= 1
        try storage.submitWrite(file, at: offset, bytes, token: token, thenDatasync: thenDatasync)
        try awaitCompletions(of: token, count: thenDatasync ? 2 : 1, writeBytes: bytes.count)
    }

    /// One fdatasync through the ring, waited for.
    private func ringDatasync(_ file: FileID) throws {
        let token = IOToken(nextToken)
        nextToken &+= 1
        try storage.submitDatasync(file, token: token)
        try awaitCompletions(of: token, count: 1, writeBytes: 0)
    }

    private func awaitCompletions(of token: IOToken, count: Int, writeBytes: Int) throws {
        var outstanding = count
        while outstanding > 0 {
            try storage.waitForCompletions(timeoutNanos: 5_000_000_000)
            storage.reapCompletions(into: &completions)
            for index in 0..<completions.count {
                let completion = completions[index]
                precondition(completion.token == token, "a completion for an operation this benchmark did not submit")
                if let error = completion.error { throw IOError(error.operation, errno: error.errno, subject: path("ring file")) }
                if completion.operation == .write && completion.result != Int32(writeBytes) {
                    throw BenchmarkError("short io_uring write: \(completion.result) of \(writeBytes) bytes")
                }
                outstanding -= 1
            }
            completions.removeAll()
        }
    }

    private func makeFilePair(_ name: String, preallocation: Preallocation, bytes: Int64) throws -> (PlainFile, FileID) {
        let plain = try PlainFile(path: path(name + "-plain"))
        try preallocation.prepare(plain, bytes: bytes)
        let ringPrepared = try PlainFile(path: path(name + "-ring"))
        try preallocation.prepare(ringPrepared, bytes: bytes)
        ringPrepared.close()
        return (plain, try storage.openFile(name + "-ring", create: false))
    }

    private func closeRingFile(_ file: FileID) { storage.closeFile(file) }

    private func removePair(_ name: String) {
        unlink(path(name + "-plain"))
        unlink(path(name + "-ring"))
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    /// A page-aligned block filled with a non-zero pattern (so nothing can be skipped as zeros).
    static func patternBlock(bytes: Int) -> UnsafeMutableRawBufferPointer {
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: bytes, alignment: 4096)
        for index in 0..<bytes { block[index] = UInt8(truncatingIfNeeded: index &* 31 &+ 7) }
        return block
    }
}
