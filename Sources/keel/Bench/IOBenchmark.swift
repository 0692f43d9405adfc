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

    /// 4 KiB write+fdatasync, one at a time: the ring (linked write→fdatasync) and plain syscalls,
    /// interleaved op by op on two files prepared alike so both see the same disk conditions.
    func syncLatency(preallocation: Preallocation) throws -> (ring: LatencySummary, plain: LatencySummary) {
        let blockBytes = 4096
        let fileBytes = Int64(sizes.syncOps * blockBytes)
        let (plain, ringFile) = try makeFilePair("sync-\(preallocation.rawValue)", preallocation: preallocation, bytes: fileBytes)
        defer { plain.close(); closeRingFile(ringFile); removePair("sync-\(preallocation.rawValue)") }
        let block = Self.patternBlock(bytes: blockBytes)
        defer { block.deallocate() }
        var ringHistogram = LatencySummary.makeHistogram()
        var plainHistogram = LatencySummary.makeHistogram()
        for index in 0..<sizes.syncOps {
            let offset = Int64(index * blockBytes)
            var started = monotonicNanos()
            try ringWrite(ringFile, at: offset, UnsafeRawBufferPointer(block), thenDatasync: true)
            _ = ringHistogram.record(UInt64(monotonicNanos() - started))
            started = monotonicNanos()
            try plain.writeFully(UnsafeRawBufferPointer(block), at: offset)
            try plain.datasync()
            _ = plainHistogram.record(UInt64(monotonicNanos() - started))
        }
        return (LatencySummary(ringHistogram), LatencySummary(plainHistogram))
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
        case mappedCopy = "copy into mapping"
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
        case .mappedCopy, .mappedCopyColdPages:
            let file = try storage.openFile(name, create: false)
            let mapping = try storage.mapForWriting(file, bytes: Int(fileBytes))
            if method == .mappedCopy { try storage.prefault(UnsafeRawBufferPointer(mapping), forWriting: true) }
            cleanup = { [storage] in storage.unmap(UnsafeRawBufferPointer(mapping)); storage.closeFile(file) }
            run = {
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
        var outstanding = thenDatasync ? 2 : 1
        while outstanding > 0 {
            try storage.waitForCompletions(timeoutNanos: 5_000_000_000)
            storage.reapCompletions(into: &completions)
            for index in 0..<completions.count {
                let completion = completions[index]
                precondition(completion.token == token, "a completion for an operation this benchmark did not submit")
                if let error = completion.error { throw IOError(error.operation, errno: error.errno, subject: path("ring file")) }
                if completion.operation == .write && completion.result != Int32(bytes.count) {
                    throw BenchmarkError("short io_uring write: \(completion.result) of \(bytes.count) bytes")
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
