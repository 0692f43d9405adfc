import KeelCore

/// Runs the series of `keel bench io` in a fixed order, printing progress as it goes.
struct IOBenchmarkRunner {
    let directory: String
    let sizes: IOBenchmark.Sizes

    func run() throws -> IOBenchmarkResults {
        let benchmark = try IOBenchmark(directory: directory, sizes: sizes) { print($0) }
        var results = IOBenchmarkResults()
        for preallocation in Preallocation.allCases {
            progress("4 KiB write+fdatasync, \(preallocation.rawValue) file, \(sizes.syncOps) ops")
            let latencies = try benchmark.syncLatency(preallocation: preallocation)
            results.syncLatency.append(.init(
                preallocation: preallocation, ringLinked: latencies.ringLinked, ringDatasync: latencies.ringDatasync, plain: latencies.plain))
        }
        for chunkBytes in [64 << 10, 1 << 20] {
            for preallocation in [Preallocation.fallocated, .zeroFilled] {
                progress("sequential write+fdatasync, \(chunkBytes >> 10) KiB chunks, \(preallocation.rawValue)")
                let throughput = try benchmark.sequentialThroughput(chunkBytes: chunkBytes, preallocation: preallocation)
                results.sequential.append(.init(chunkBytes: chunkBytes, preallocation: preallocation, throughput: throughput))
            }
        }
        // 64 B: one small frame; 4 KiB: a page; 64 KiB: a batch of frames written as one append.
        for (appendBytes, count) in [(64, sizes.smallAppends), (4096, sizes.pageAppends), (65536, sizes.batchAppends)] {
            for method in IOBenchmark.AppendMethod.allCases {
                progress("\(appendBytes)-byte appends by \(method.rawValue), \(count) appends")
                results.appends.append(try benchmark.appendCost(method: method, appendBytes: appendBytes, appends: count))
            }
        }
        return results
    }

    private func progress(_ line: String) { print("  measuring: " + line) }
}

struct IOBenchmarkResults: Codable {
    struct SyncLatency: Codable {
        var preallocation: Preallocation
        var ringLinked: LatencySummary
        var ringDatasync: LatencySummary
        var plain: LatencySummary
    }
    struct Sequential: Codable {
        var chunkBytes: Int
        var preallocation: Preallocation
        var throughput: IOBenchmark.Throughput
    }
    var syncLatency: [SyncLatency] = []
    var sequential: [Sequential] = []
    var appends: [IOBenchmark.AppendCost] = []
}

struct IOBenchmarkReport: Codable {
    var machine: MachineDescription
    var syncOps: Int
    var sequentialBytes: Int64
    var results: IOBenchmarkResults
    var quick = false
    /// The method with the most appends per second, per append size, counting every cost it has on the
    /// appending thread (so the pre-faulted mapping, whose faults were paid outside the timed loop, is
    /// left out: it shows only the best case if another thread paid them).
    var fastestAppendMethod: [String: String] = [:]
    /// The preallocation with the lower p50 4 KiB write+fdatasync latency through the ring.
    var fasterPreallocation = ""

    init(machine: MachineDescription, sizes: IOBenchmark.Sizes, results: IOBenchmarkResults) {
        self.machine = machine
        syncOps = sizes.syncOps
        sequentialBytes = sizes.sequentialBytes
        self.results = results
        for size in Set(results.appends.map(\.appendBytes)) {
            let best = results.appends.filter { $0.appendBytes == size && $0.method != .mappedCopy }.max { $0.appendsPerSecond < $1.appendsPerSecond }
            fastestAppendMethod["\(size)"] = best?.method.rawValue
        }
        let candidates = results.syncLatency.filter { $0.preallocation != .growing }
        fasterPreallocation = candidates.min { $0.ringDatasync.p50Nanos < $1.ringDatasync.p50Nanos }?.preallocation.rawValue ?? ""
    }

    func printTable() {
        print("")
        print("4 KiB write+fdatasync latency, µs (\(syncOps) ops each, the three ways interleaved in rotating order)")
        print("  ring linked:   write→fdatasync linked in io_uring; ring datasync: pwrite, then fdatasync through io_uring")
        print("  plain:         pwrite + fdatasync syscalls (baseline)")
        print("  " + padRight("file", 14) + padRight("path", 15) + ["p50", "p99", "p99.9", "max"].map { padLeft($0, 9) }.joined() + padLeft("/plain p50", 12))
        for row in results.syncLatency {
            for (name, summary) in [("ring linked", row.ringLinked), ("ring datasync", row.ringDatasync), ("plain", row.plain)] {
                let ratio = name == "plain" ? "" : formatFixed(Double(summary.p50Nanos) / Double(max(1, row.plain.p50Nanos)), decimals: 2)
                print("  " + padRight(row.preallocation.rawValue, 14) + padRight(name, 15)
                    + [summary.p50Nanos, summary.p99Nanos, summary.p999Nanos, summary.maxNanos].map { padLeft(micros($0), 9) }.joined()
                    + padLeft(ratio, 12))
            }
        }
        print("")
        print("sequential write+fdatasync, MB/s (\(sequentialBytes >> 20) MiB each)")
        print("  " + padRight("chunk", 9) + padRight("file", 14) + padLeft("ring", 9) + padLeft("plain", 9) + padLeft("ring/plain", 12))
        for row in results.sequential {
            print("  " + padRight("\(row.chunkBytes >> 10) KiB", 9) + padRight(row.preallocation.rawValue, 14)
                + padLeft(formatFixed(row.throughput.ringMBps, decimals: 0), 9) + padLeft(formatFixed(row.throughput.plainMBps, decimals: 0), 9)
                + padLeft(formatFixed(row.throughput.ringMBps / row.throughput.plainMBps, decimals: 2), 12))
        }
        print("")
        print("appends into the page cache (fallocate'd file, one append at a time, no sync)")
        print("  " + padRight("size", 8) + padRight("method", 40) + padLeft("appends/s", 13) + padLeft("CPU µs/append", 15) + padLeft("wall µs/append", 16))
        for row in results.appends {
            print("  " + padRight("\(row.appendBytes) B", 8) + padRight(row.method.rawValue, 40)
                + padLeft(formatFixed(row.appendsPerSecond, decimals: 0), 13)
                + padLeft(formatFixed(row.cpuMicrosPerAppend, decimals: 3), 15) + padLeft(formatFixed(row.wallMicrosPerAppend, decimals: 3), 16))
        }
        print("")
        for size in fastestAppendMethod.keys.sorted(by: { Int($0)! < Int($1)! }) {
            print("fastest append method for \(size)-byte appends, all costs on the appending thread: \(fastestAppendMethod[size]!)")
        }
        print("lower-latency preallocation for write+fdatasync: \(fasterPreallocation)")
        if quick { print("(quick smoke run: too few operations for figures worth recording)") }
    }
}
