import Benchmark
import KeelCore
import KeelLog
import KeelSimulation
import KeelWire

// Each suite reports wall time and `mallocCountTotal` per measured iteration, with set-up outside the
// measurement; steady-state hot paths must stay at 0 allocations: Thresholds/ holds each suite's recorded
// mallocCountTotal (0), and `swift package benchmark thresholds check` fails when one allocates.
// Names have no spaces: package-benchmark writes threshold files with spaces turned into underscores but
// reads them back under the name as given.
// Run: `cd Benchmarks && swift package benchmark`.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        maxDuration: .seconds(2),
        maxIterations: 100_000,
        // A steady-state path that starts allocating fails the run (Thresholds/ holds the recorded p90s).
        thresholds: [.mallocCountTotal: .init(absolute: [.p90: 0])]
    )
    registerHotPathBenchmarks()
    registerExactlyOnceBenchmarks()

    Benchmark("CRC32C_4_KiB") { benchmark in
        let bytes = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 64)
        defer { bytes.deallocate() }
        bytes.initializeMemory(as: UInt8.self, repeating: 0xA5)
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(CRC32C.checksum(UnsafeRawBufferPointer(bytes)))
        }
    }

    Benchmark("Raft_core:_propose_and_commit_256_entries_(3_cores)") { benchmark in
        var cluster = RaftThroughputBench.SteadyCluster(mode: .durable)
        for _ in 0..<1000 { cluster.proposeAndCommit(byteCount: 256 * 32) }  // warm the buffers up
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            cluster.proposeAndCommit(byteCount: 256 * 32)
        }
        benchmark.stopMeasurement()
        blackHole(cluster.commitPosition)
    }

    // On the simulated disk: KeelIO cannot be imported here (liburing's io_uring.h clashes with the one
    // swift-system, which package-benchmark uses, includes). The log's own path is the same on both.
    Benchmark("Log_append:_100_frames_of_32_B,_replicated,_pwrite", configuration: .init(maxIterations: 20_000)) { benchmark in
        do {
            let disk = SimulatedDisk(seed: 1, configuration: SimulatedDiskConfiguration(
                capacityBytes: 4 << 30, fileCapacityBytes: 1 << 30, faults: .keepAllUnsynced))
            let storage = SimulatedStorage(disk: disk)
            let log = try ReplicatedLog(storage: storage, configuration: LogConfiguration(
                clusterID: 1, segmentLengthBytes: 512 << 20, durability: .replicated, appendMethod: .pwrite))
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 8)
            defer { payload.deallocate() }
            payload.initializeMemory(as: UInt8.self, repeating: 7)
            let header = LogEntryHeader(type: .sessionMessage, sessionID: 1)
            func appendBatch() throws {
                for _ in 0..<100 { try log.append(term: Term(1), header, payload: UnsafeRawBufferPointer(payload)) }
                _ = try log.commitBatch()
                _ = try log.poll()
            }
            for _ in 0..<1000 { try appendBatch() }  // past the first segment's set-up
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { try appendBatch() }
            benchmark.stopMeasurement()
        } catch {
            benchmark.error("log append benchmark failed: \(error)")
        }
    }

    // Payloads of at least gatherPayloadMinimumBytes go out by gather write from the caller's buffer.
    // 2,000 iterations of 80 KiB stay inside the first 512 MiB segment (no roll-over in the measurement).
    Benchmark("Log_append:_10_frames_of_8_KiB,_replicated,_pwrite_gather_write", configuration: .init(maxIterations: 2_000)) { benchmark in
        do {
            let disk = SimulatedDisk(seed: 1, configuration: SimulatedDiskConfiguration(
                capacityBytes: 4 << 30, fileCapacityBytes: 1 << 30, faults: .keepAllUnsynced))
            let storage = SimulatedStorage(disk: disk)
            let log = try ReplicatedLog(storage: storage, configuration: LogConfiguration(
                clusterID: 1, segmentLengthBytes: 512 << 20, durability: .replicated, appendMethod: .pwrite))
            let payload = UnsafeMutableRawBufferPointer.allocate(byteCount: 8 << 10, alignment: 8)
            defer { payload.deallocate() }
            payload.initializeMemory(as: UInt8.self, repeating: 7)
            let header = LogEntryHeader(type: .sessionMessage, sessionID: 1)
            func appendBatch() throws {
                for _ in 0..<10 { try log.append(term: Term(1), header, payload: UnsafeRawBufferPointer(payload)) }
                _ = try log.commitBatch()
                _ = try log.poll()
            }
            for _ in 0..<200 { try appendBatch() }  // past the first segment's set-up
            benchmark.startMeasurement()
            for _ in benchmark.scaledIterations { try appendBatch() }
            benchmark.stopMeasurement()
        } catch {
            benchmark.error("log append benchmark failed: \(error)")
        }
    }
}
