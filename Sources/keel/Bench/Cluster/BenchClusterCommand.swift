import ArgumentParser
import Foundation
import Glibc
import KeelClient
import KeelCore
import KeelLocalCluster

/// `keel bench cluster` (issue 7; `--service kv`, issue 8): round-trip latency through a 3-member cluster running the echo (or kv)
/// service, at fixed offered rates (open loop, coordinated omission corrected), beside a three-process
/// TCP relay measured in the same run; sustained throughput; failover times; CPU and memory.
struct BenchClusterCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cluster",
        abstract: "Measure round-trip latency, throughput and failover of a 3-node cluster against a TCP relay baseline.",
        discussion: """
            Starts three `keel node` processes on loopback (or drives an existing cluster with --members) and a
            three-process TCP relay (client -> A -> B -> A -> client, blocking sockets, TCP_NODELAY) as the same-run
            baseline. Latency is measured from each message's scheduled send time. Writes a .hgrm file per rate and a
            percentile plot (SVG, and PNG when rsvg-convert is installed) into --out.
            """)

    @Option(help: "Offered rates in messages per second, comma separated.")
    var rates: String = "1000,10000,100000"
    @Option(help: "Message size in bytes (at least 16); with --service kv, the bytes of each value put.")
    var size: Int = 32
    @Option(help: "The service the local cluster runs: echo, or kv (a 50/50 mix of puts and gets over --keys keys).")
    var service: String = "echo"
    @Option(help: "With --service kv: the key space (8-byte keys).")
    var keys: Int = 10_000
    @Option(help: "Seconds measured per rate.")
    var duration: Double = 10
    @Option(help: "Seconds of warm-up before each measured window.")
    var warmUp: Double = 2
    @Option(help: "Client sessions (messages are spread over them in turn).")
    var sessions: Int = 1
    @Option(help: "Messages in flight per session at most (throughput runs).")
    var inFlight: Int = 4096
    @Option(help: "Durability mode of the local cluster: durable or replicated.")
    var sync: String = "durable"
    @Option(help: "Drive an existing cluster (ID=HOST:MEMBERPORT:CLIENTPORT,...) instead of starting one.")
    var members: String?
    @Option(help: "Sustained-throughput search: the first rate tried (0: no search).")
    var searchStart: Double = 250_000
    @Option(help: "Seconds each rate of the throughput search must be held.")
    var sustainSeconds: Double = 30
    @Option(help: "Most rates the throughput search tries, per system.")
    var searchSteps: Int = 8
    @Option(help: "Leader kills for the failover distribution (local cluster only; 0: none).")
    var failovers: Int = 5
    @Option(help: "Offered rate while measuring failovers.")
    var failoverRate: Double = 1000
    @Option(help: "Folder for the .hgrm files and the plot (created if missing).")
    var out: String = "keel-bench-cluster"
    @Option(help: "Write all results as JSON to this file.")
    var json: String?
    @Option(name: .customLong("node-argument"), help: "One more argument for every local `keel node` (repeatable), e.g. --node-argument=--shared-thread.")
    var nodeArguments: [String] = []
    @Flag(help: "Keep the local cluster's folder (logs, node output) afterwards.")
    var keep = false
    @Flag(help: "With --service kv: put every key once, then compare --snapshot-rate with and without a snapshot (an admin request in the measured window) in --snapshot-pairs alternating pairs of phases.")
    var snapshotDuring = false
    @Option(help: "With --snapshot-during: the offered rate, msg/s.")
    var snapshotRate: Double = 10_000
    @Option(help: "With --snapshot-during: pairs of phases (without, with); the median ratio is reported.")
    var snapshotPairs: Int = 5
    @Option(help: "With --snapshot-during: seconds into the measured window at which the snapshot is requested.")
    var snapshotAfter: Double = 2

    func validate() throws {
        guard service == "echo" || service == "kv" else { throw ValidationError("--service must be echo or kv") }
        guard keys > 0 else { throw ValidationError("--keys must be positive") }
        guard DurabilityMode(rawValue: sync) != nil else { throw ValidationError("--sync must be durable or replicated") }
        guard size >= BenchMessage.minimumBytes else { throw ValidationError("--size must be at least \(BenchMessage.minimumBytes) bytes") }
        guard !parsedRates.isEmpty, parsedRates.allSatisfy({ $0 > 0 }) else { throw ValidationError("--rates must list positive rates, e.g. 1000,10000") }
        guard duration > 0, warmUp >= 0, sessions > 0, inFlight > 0, sustainSeconds > 0, searchSteps > 0, failovers >= 0, failoverRate > 0 else {
            throw ValidationError("durations, sessions, in-flight and counts must be positive")
        }
        if snapshotDuring {
            guard service == "kv", members == nil else { throw ValidationError("--snapshot-during needs --service kv and the local cluster") }
            guard snapshotRate > 0, snapshotPairs > 0, snapshotAfter >= 0, snapshotAfter < duration else {
                throw ValidationError("--snapshot-rate and --snapshot-pairs must be positive, --snapshot-after within --duration")
            }
        }
        if let members, ClusterMemberAddress.parseMemberList(members) == nil {
            throw ValidationError("--members: expected ID=HOST:MEMBERPORT:CLIENTPORT,... (as for keel node)")
        }
    }

    var parsedRates: [Double] { rates.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) } }

    func run() throws {
        signal(SIGINT) { _ in benchInterrupted.store(true, ordering: .relaxed) }
        signal(SIGTERM) { _ in benchInterrupted.store(true, ordering: .relaxed) }
        keelSetTimerSlack()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let machine = MachineDescription.current(directory: "/tmp")
        let serviceDescription = service == "kv" ? "kv service: 50/50 put/get over \(grouped(Double(keys))) keys, \(size)-byte values" : "echo service"
        let clusterDescription = (members.map { "existing cluster \($0)" }
            ?? "local 3-node cluster (\(sync)\(nodeArguments.isEmpty ? "" : ", " + nodeArguments.joined(separator: " ")))") + ", " + serviceDescription
        print("keel bench cluster — \(machine.cpuModel), \(machine.cores) cores, kernel \(machine.kernel); \(clusterDescription); \(size)-byte \(service == "kv" ? "values" : "messages"), \(sessions) session(s), ≤ \(inFlight) in flight each")
        if service == "kv" { print("the relay baseline carries \(size)-byte messages (a transport floor: it runs no service)") }

        var cluster: LocalCluster?
        var relay: RelayBaseline?
        var load: ClusterLoad?
        defer {
            load?.close()
            relay?.close()
            cluster?.shutdown()
            if let cluster { print(keep ? "kept \(cluster.root)" : "cleaned up: cluster processes stopped and reaped, \(cluster.root) removed") }
        }
        var report = BenchClusterReport(
            machine: machine, command: CommandLine.arguments.joined(separator: " "), sync: members == nil ? sync : "as configured",
            cluster: clusterDescription, messageBytes: size, sessions: sessions, inFlightPerSession: inFlight, warmUpSeconds: warmUp,
            durationSeconds: duration, rates: [], throughput: [], rssAnonMaxBytes: [:])
        if service == "kv" { report.messages = KeyValueLoad.describe(keyCount: keys, valueBytes: size) }

        let addresses: [ClusterMemberAddress]
        if let members {
            addresses = ClusterMemberAddress.parseMemberList(members)!
        } else {
            let local = try LocalCluster(binary: LocalFiles.selfExecutable(), sync: sync, service: service, clusterID: "keel-bench", directoryPrefix: "/tmp/keel-bench-cluster")
            local.keepsDirectory = keep
            for member in local.members { local.extraArguments[member.id] = nodeArguments }
            cluster = local
            if sync == "durable" {
                report.fdatasync = try FdatasyncProbe.measure(directory: local.root)
                print("fdatasync baseline (4 KiB over a zero-filled file, \(fileSystemName(of: local.root))): p50 \(micros(report.fdatasync!.p50Nanos)) µs, p99 \(micros(report.fdatasync!.p99Nanos)) µs")
            }
            let launched = monotonicNanos()
            try local.startAll()
            report.leaderElectedAfterLaunchNanos = try waitForLeader(local, since: launched)
            print("started 3 nodes in \(local.root); leader elected after \(report.leaderElectedAfterLaunchNanos! / 1_000_000) ms")
            addresses = local.clientAddresses
        }
        let keyValue = service == "kv" ? KeyValueLoad(keyCount: keys, valueBytes: size, sessions: sessions, inFlightPerSession: inFlight) : nil
        let clusterLoad = ClusterLoad(members: addresses, sessions: sessions, messageBytes: size, inFlightPerSession: inFlight, keyValue: keyValue)
        load = clusterLoad
        do { try clusterLoad.connect(timeoutNanos: 30_000_000_000) } catch { throw BenchmarkError("client: \(error)") }
        // The relay processes' output (normally nothing) goes beside the nodes', or into --out for an existing cluster.
        let baseline = try RelayBaseline(binary: LocalFiles.selfExecutable(), directory: cluster?.root ?? out, messageBytes: size)
        relay = baseline

        let settings = ClusterBenchmark.Settings(
            messageBytes: size, sessions: sessions, inFlightPerSession: inFlight,
            warmUpNanos: Int64(warmUp * 1e9), measureNanos: Int64(duration * 1e9))
        let benchmark = ClusterBenchmark(settings: settings, load: clusterLoad, relay: baseline, cluster: cluster, outputDirectory: out)
        if snapshotDuring, let keyValue { try benchmark.preload(keyValue, inFlight: inFlight) }
        for rate in parsedRates {
            let clusterResult = try benchmark.clusterPhase(rate: rate, measureNanos: settings.measureNanos, label: "rate")
            let relayResult = try benchmark.relayPhase(rate: rate, measureNanos: settings.measureNanos, label: "rate")
            let comparison = benchmark.compare(rate: rate, cluster: clusterResult, relay: relayResult)
            report.rates.append(comparison)
            defer { fflush(nil) }
            print("  \(grouped(rate)) msg/s: cluster p50 \(micros(clusterResult.latency.p50Nanos)) µs p99 \(micros(clusterResult.latency.p99Nanos)) µs; relay p50 \(micros(relayResult.latency.p50Nanos)) µs p99 \(micros(relayResult.latency.p99Nanos)) µs")
        }
        if snapshotDuring, let keyValue {
            print("p99.9 at \(grouped(snapshotRate)) msg/s with a snapshot requested \(formatFixed(snapshotAfter, decimals: 1)) s into the measured window, against without one (\(snapshotPairs) pairs, order alternating):")
            let result = try benchmark.snapshotDuringLoad(
                rate: snapshotRate, pairs: snapshotPairs, requestAfterNanos: Int64(snapshotAfter * 1e9), keyValue: keyValue)
            report.snapshotDuringLoad = result
            print("  median ratio of p99.9 with / without a snapshot: \(formatFixed(result.medianRatio, decimals: 2))× (goal ≤ 2×)")
        }
        if searchStart > 0 {
            print("sustained-throughput search (\(formatFixed(sustainSeconds, decimals: 0)) s per rate):")
            let sustainNanos = Int64(sustainSeconds * 1e9)
            report.throughput.append(try benchmark.searchThroughput(system: "cluster", startRate: searchStart, sustainNanos: sustainNanos, maxSteps: searchSteps))
            report.throughput.append(try benchmark.searchThroughput(system: "relay", startRate: searchStart, sustainNanos: sustainNanos, maxSteps: searchSteps))
        }
        if failovers > 0 && cluster != nil {
            print("failover: kill -9 of the leader, \(failovers) times")
            report.failover = try benchmark.failovers(count: failovers, rate: failoverRate)
        } else if failovers > 0 {
            print("failover: not measured (an existing cluster's processes are not ours to kill)")
        }
        if let keyValue {
            print("kv responses: \(keyValue.okCount) ok, \(keyValue.notFoundCount) not found (gets before the key's first put), \(keyValue.errors) errors")
        }
        report.rssAnonMaxBytes = benchmark.rssAnonMaxBytes
        try writePlot(benchmark, into: &report)
        report.printTable()
        print("files: \(out)/ (.hgrm per rate, \(report.plotFile ?? "no plot")\(report.pngFile.map { ", " + $0 } ?? ""))")
        if let note = report.pngNote { print("PNG not written: \(note)") }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
            print("results written to \(json)")
        }
    }

    func waitForLeader(_ cluster: LocalCluster, since: Int64) throws -> Int64 {
        let deadline = since + 30_000_000_000
        while monotonicNanos() < deadline {
            if benchInterrupted.load(ordering: .relaxed) { throw BenchmarkError("interrupted") }
            if cluster.leader() != nil { return monotonicNanos() - since }
            for member in cluster.members where !cluster.isRunning(member.id) {
                throw BenchmarkError("node \(member.id) exited:\n\(cluster.tail(member.id))")
            }
            usleep(2_000)
        }
        throw BenchmarkError("no leader within 30 s of the launch")
    }

    func writePlot(_ benchmark: ClusterBenchmark, into report: inout BenchClusterReport) throws {
        var series: [PercentilePlot.Series] = []
        let rates = Array(Set(benchmark.histograms.map(\.rate))).sorted()
        for entry in benchmark.histograms {
            let color = PercentilePlot.palette[(rates.firstIndex(of: entry.rate) ?? 0) % PercentilePlot.palette.count]
            series.append(PercentilePlot.Series(label: "\(entry.system) \(grouped(entry.rate))/s", color: color, dashed: entry.system == "relay", histogram: entry.histogram))
        }
        let plot = PercentilePlot(title: "keel bench cluster: \(report.cluster), \(report.messages ?? "\(size)-byte messages") (dashed: TCP relay baseline)", series: series)
        let svgPath = "\(out)/percentiles.svg"
        switch try plot.write(svgPath: svgPath) {
        case .success(let png): report.pngFile = png
        case .failure(let unavailable): report.pngNote = unavailable.reason
        }
        report.plotFile = svgPath
    }
}

/// 4 KiB `pwrite` + `fdatasync` overwriting a zero-filled file (as the log's segments are prepared):
/// the floor under durable mode's latency, measured on the cluster's file system in the same run.
enum FdatasyncProbe {
    static func measure(directory: String, count: Int = 1000) throws -> PercentileSummary {
        let file = try PlainFile(path: "\(directory)/fdatasync-probe")
        defer { file.close(); unlink(file.path) }
        try file.zeroFill(bytes: Int64(count) * 4096)
        let block = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 4096)
        defer { block.deallocate() }
        block.initializeMemory(as: UInt8.self, repeating: 0x5A)
        var histogram = CorrectedLatencyRecorder.makeHistogram()
        for index in 0..<count {
            let start = monotonicNanos()
            try file.writeFully(UnsafeRawBufferPointer(block), at: Int64(index) * 4096)
            try file.datasync()
            histogram.record(UInt64(max(1_000, monotonicNanos() - start)))
        }
        return PercentileSummary(histogram)
    }
}
