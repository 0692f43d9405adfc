/// CPU time one process used over a measured window.
struct ProcessCPU: Codable {
    var name: String
    var seconds: Double
    /// seconds / the window's wall-clock seconds.
    var cores: Double
}

/// One measured phase: one system (the cluster or the relay) at one offered rate.
struct PhaseResult: Codable {
    var system: String
    var offeredPerSecond: Double
    var achievedPerSecond: Double
    var measuredSeconds: Double
    var sent: Int64
    var echoed: Int64
    /// Sent but never echoed within the drain time.
    var unanswered: Int64
    /// Due and not yet echoed, at the middle and at the end of the measured window.
    var backlogAtMiddle: Int64
    var backlogAtEnd: Int64
    /// The rate was held: everything echoed, achieved ≥ 97% of offered, and the backlog grew by
    /// less than 50 ms worth of messages over the second half of the window.
    var held: Bool
    var latency: PercentileSummary
    var cpu: [ProcessCPU]
    /// RssAnon per node at the end of the phase (cluster phases, local cluster only).
    var rssAnonBytes: [String: Int64]?
    var hgrmFile: String?

    static func held(offered: Double, achieved: Double, sent: Int64, echoed: Int64, scheduled: Int64, backlogMid: Int64, backlogEnd: Int64) -> Bool {
        let slack = max(Int64(offered * 0.05), 16)
        return echoed == sent && sent >= scheduled && achieved >= 0.97 * offered && backlogEnd <= backlogMid + slack
    }
}

/// Cluster and relay at one offered rate, and their ratios.
struct RateComparison: Codable {
    var ratePerSecond: Double
    var cluster: PhaseResult
    var relay: PhaseResult
    /// cluster / relay for p50, p90, p99, p99.9, p99.99, max.
    var latencyRatios: [Double]
}

/// The sustained-throughput search: rates tried and the highest held.
struct ThroughputSearch: Codable {
    var system: String
    var sustainedPerSecond: Double
    var steps: [PhaseResult]
}

/// kill -9 of the leader, repeated: time until the client's next echo.
struct FailoverResult: Codable {
    var count: Int
    var rateDuringFailoverPerSecond: Double
    var timesNanos: [Int64]
    var summary: PercentileSummary?
    /// Time from a failover's kill to the restarted member having caught up, per failover.
    var catchUpNanos: [Int64]
}

/// Everything `keel bench cluster` measured; written by `--json`.
struct BenchClusterReport: Codable {
    var machine: MachineDescription
    var command: String
    var sync: String
    var cluster: String
    var messageBytes: Int
    /// What each message is when it is not an echo of `messageBytes` (the kv mix); nil for echo.
    var messages: String?
    var sessions: Int
    var inFlightPerSession: Int
    var warmUpSeconds: Double
    var durationSeconds: Double
    /// Cold launch of the local cluster to the first leader in the counters files.
    var leaderElectedAfterLaunchNanos: Int64?
    /// 4 KiB pwrite+fdatasync over a zero-filled file in the cluster's folder, measured in the same
    /// run (durable mode).
    var fdatasync: PercentileSummary?
    var rates: [RateComparison]
    var throughput: [ThroughputSearch]
    var failover: FailoverResult?
    /// The most RssAnon seen per node over all phases.
    var rssAnonMaxBytes: [String: Int64]
    var plotFile: String?
    var pngFile: String?
    var pngNote: String?
    /// `--snapshot-during`: the same rate with and without a snapshot, pair by pair.
    var snapshotDuringLoad: SnapshotDuringLoadResult?

    func printTable() {
        print("")
        print("round-trip latency, µs (open loop, from each message's scheduled send time; \(messages ?? "\(messageBytes)-byte messages"), \(sessions) session\(sessions == 1 ? "" : "s"), \(formatFixed(durationSeconds, decimals: 0)) s per rate after \(formatFixed(warmUpSeconds, decimals: 0)) s warm-up)")
        let header = padRight("", 16) + padLeft("offered/s", 11) + padLeft("achieved/s", 12) + PercentileSummary.columnNames.map { padLeft($0, 10) }.joined()
        print(header)
        for rate in rates {
            for phase in [rate.cluster, rate.relay] {
                let cells = phase.latency.columns.map { padLeft(micros($0), 10) }.joined()
                print(padRight("  " + phase.system, 16) + padLeft(grouped(phase.offeredPerSecond), 11) + padLeft(grouped(phase.achievedPerSecond), 12) + cells
                      + (phase.held ? "" : "  (not held)"))
            }
            print(padRight("  cluster/relay", 39) + rate.latencyRatios.map { padLeft(formatFixed($0, decimals: 2) + "x", 10) }.joined())
        }
        if let fdatasync {
            print("  fdatasync (4 KiB pwrite+fdatasync over a zero-filled file, same file system, same run): p50 \(micros(fdatasync.p50Nanos)) µs, p99 \(micros(fdatasync.p99Nanos)) µs, p99.9 \(micros(fdatasync.p999Nanos)) µs")
        }
        printCPU()
        for search in throughput {
            let tried = search.steps.map { "\(grouped($0.offeredPerSecond))\($0.held ? "✓" : "✗")" }.joined(separator: " ")
            print("sustained throughput, \(search.system): \(grouped(search.sustainedPerSecond)) msg/s (tried: \(tried))")
        }
        if throughput.count == 2, throughput[1].sustainedPerSecond > 0 {
            print("  cluster/relay: \(formatFixed(throughput[0].sustainedPerSecond / throughput[1].sustainedPerSecond, decimals: 3))")
        }
        if let leaderElectedAfterLaunchNanos {
            print("leader elected \(leaderElectedAfterLaunchNanos / 1_000_000) ms after a cold launch")
        }
        if let failover, let summary = failover.summary {
            print("failover (kill -9 of the leader → next echo), \(failover.count) times at \(grouped(failover.rateDuringFailoverPerSecond)) msg/s: p50 \(millis(summary.p50Nanos)) ms, max \(millis(summary.maxNanos)) ms; each: \(failover.timesNanos.map { "\($0 / 1_000_000)" }.joined(separator: ", ")) ms")
        }
        if !rssAnonMaxBytes.isEmpty {
            print("RssAnon, most per node: " + rssAnonMaxBytes.sorted { $0.key < $1.key }.map { "\($0.key) \(formatFixed(Double($0.value) / 1_048_576, decimals: 1)) MiB" }.joined(separator: ", "))
        }
    }

    private func printCPU() {
        print("CPU over each measured window, cores (CPU seconds / wall seconds):")
        for rate in rates {
            for phase in [rate.cluster, rate.relay] {
                let parts = phase.cpu.map { "\($0.name) \(formatFixed($0.cores, decimals: 3))" }.joined(separator: ", ")
                print("  \(padRight(phase.system, 8)) \(padLeft(grouped(phase.offeredPerSecond), 10))/s: \(parts)")
            }
            if let nodes = rate.cluster.cpu.first(where: { $0.name == "nodes" })?.cores {
                let relayCores = rate.relay.cpu.filter { $0.name.hasPrefix("relay") }.map(\.cores).reduce(0, +)
                if relayCores > 0 { print("  \(padRight("", 8)) \(padLeft("", 10))   nodes / relay processes: \(formatFixed(nodes / relayCores, decimals: 2))x") }
            }
        }
    }
}

/// "1,234,567" for a rate.
func grouped(_ value: Double) -> String {
    let whole = Int64(value.rounded())
    let digits = String(whole.magnitude)
    var out = ""
    for (index, character) in digits.enumerated() {
        if index > 0 && (digits.count - index) % 3 == 0 { out += "," }
        out.append(character)
    }
    return whole < 0 ? "-" + out : out
}

func millis(_ nanos: UInt64) -> String { formatFixed(Double(nanos) / 1e6, decimals: 1) }
