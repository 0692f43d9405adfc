import ArgumentParser
import KeelCore
import KeelSimulation

/// `keel bench raft`: the Raft core alone — three cores, a perfect in-memory network, positions only.
struct BenchRaftCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft",
        abstract: "Measure committed proposals per second through three Raft cores on one thread (no I/O).")

    @Option(help: "Proposals per run.")
    var proposals: Int = 1_000_000
    @Option(help: "Entries (32 bytes each) per proposal.")
    var entries: Int = 256
    @Option(help: "Runs; the median is reported.")
    var runs: Int = 5
    @Option(help: "Durability mode of the cores.")
    var mode: String = "durable"

    func run() throws {
        guard let durability = DurabilityMode(rawValue: mode) else {
            throw ValidationError("--mode must be durable or replicated, not \(mode)")
        }
        guard proposals > 0, entries > 0, runs > 0 else { throw ValidationError("--proposals, --entries and --runs must be positive") }
        var results: [RaftThroughputBench.Result] = []
        for run in 1...runs {
            let result = RaftThroughputBench.run(proposals: proposals, entriesPerProposal: entries, mode: durability)
            results.append(result)
            print("  run \(run): \(formatFixed(result.proposalsPerSecond, decimals: 0)) proposals/s, "
                + "\(formatFixed(result.entriesPerSecond / 1e6, decimals: 1)) M entries/s, \(result.steps) core steps")
        }
        let median = results.sorted { $0.proposalsPerSecond < $1.proposalsPerSecond }[results.count / 2]
        print("keel bench raft — 3 cores, \(durability.rawValue), \(entries) entries per proposal, median of \(runs) runs:")
        print("  \(formatFixed(median.proposalsPerSecond, decimals: 0)) proposals/s committed on one core "
            + "(\(formatFixed(median.entriesPerSecond / 1e6, decimals: 1)) M entries/s; goal ≥ 1,000,000 proposals/s)")
    }
}
