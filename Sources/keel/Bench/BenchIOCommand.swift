import ArgumentParser
import Foundation
import Glibc
import KeelCore
import KeelIO

/// `keel bench io`: the disk through Keel's io_uring ring against plain syscalls, in one run.
struct BenchIOCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "io",
        abstract: "Measure write+fdatasync latency, sequential throughput and append methods on this disk.",
        discussion: """
            Every io_uring figure comes with a plain-syscall baseline measured in the same run on a file \
            prepared the same way. Files are created in a scratch folder under --dir and removed after.
            """)

    @Option(help: "Write+fdatasync operations per latency series (at least 2,000 for the recorded figures).")
    var ops: Int = 2000
    @Option(help: "MiB written per sequential-throughput series.")
    var sequentialMiB: Int = 256
    @Option(help: "Appends per append-method series (64-byte appends; 4 KiB series use a quarter, 64 KiB series 1/64).")
    var appends: Int = 200_000
    @Option(help: "Folder on the disk to measure (a scratch folder is made inside it).")
    var dir: String = "."
    @Option(help: "Write all results as JSON to this file.")
    var json: String?
    @Flag(help: "A short smoke run (CI): few operations, small files. Its figures are not for recording.")
    var quick = false

    func run() throws {
        try requireIOUring()
        let sizes = quick
            ? IOBenchmark.Sizes(syncOps: 100, sequentialBytes: 8 << 20, smallAppends: 5_000, pageAppends: 1_000, batchAppends: 100)
            : IOBenchmark.Sizes(syncOps: ops, sequentialBytes: Int64(sequentialMiB) << 20, smallAppends: appends, pageAppends: max(1, appends / 4), batchAppends: max(1, appends / 64))
        let scratch = try makeScratchDirectory(in: dir)
        defer { removeScratchDirectory(scratch) }
        let needed = 2 * max(sizes.sequentialBytes, Int64(sizes.pageAppends) * 4096, Int64(sizes.batchAppends) << 16) + (64 << 20)
        let free = freeBytes(at: scratch)
        guard free >= needed else {
            throw BenchmarkError("keel bench io: needs \(needed >> 20) MiB free in \(dir), has \(free >> 20) MiB; use --dir or smaller sizes")
        }
        let machine = MachineDescription.current(directory: scratch)
        print("keel bench io — \(machine.cpuModel), \(machine.cores) cores, kernel \(machine.kernel), \(machine.fileSystem) at \(dir)")
        if machine.fileSystem == "tmpfs" { print("warning: \(dir) is tmpfs: fdatasync does nothing there; measure a real disk with --dir") }
        let report = try IOBenchmarkRunner(directory: scratch, sizes: sizes).run()
        var output = IOBenchmarkReport(machine: machine, sizes: sizes, results: report)
        output.quick = quick
        output.printTable()
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(output).write(to: URL(fileURLWithPath: json))
            print("results written to \(json)")
        }
    }
}

/// Stops with the probe's one-line explanation when io_uring cannot be used here.
func requireIOUring() throws {
    do {
        try IOUringProbe.check()
    } catch {
        printError("keel: \(error.message)")
        throw ExitCode(2)
    }
}

func printError(_ line: String) {
    var standardError = FileHandle.standardError
    print(line, to: &standardError)
}

extension FileHandle: @retroactive TextOutputStream {
    public func write(_ string: String) { write(Data(string.utf8)) }
}

func makeScratchDirectory(in parent: String) throws -> String {
    var template = Array((parent + "/keel-bench-XXXXXX").utf8CString)
    let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
    guard made != nil else { throw BenchmarkError("cannot create a scratch folder in \(parent): \(errnoName(errno))") }
    return String(cString: template)
}

func removeScratchDirectory(_ path: String) {
    if let names = try? FileManager.default.contentsOfDirectory(atPath: path) {
        for name in names { unlink(path + "/" + name) }
    }
    rmdir(path)
}
