import ArgumentParser
import KeelCore
import KeelRaft
import KeelSimulation

/// `keel sim`: runs the deterministic Raft simulator over many seeds and reports what it found.
struct SimCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sim",
        abstract: "Run the deterministic Raft simulator (safety and liveness checkers) over many seeds.",
        discussion: """
            Runs seeds S, S+1, … until at least --seeds seeds ran and at least --seconds passed. Stops at the \
            first violation, prints its seed and the command that replays it, and exits non-zero. Build in \
            release for real runs: swift build -c release --product keel.
            """
    )

    @Option(help: "Run at least this many seeds.") var seeds: Int = 100
    @Option(help: "Members per cluster: 3 or 5.") var members: Int = 3
    @Option(help: "Durability mode: durable or replicated.") var mode: String = "durable"
    @Option(help: "The first seed.") var seed: UInt64 = 1
    @Option(help: "Keep running new seeds until this many seconds passed (a time box; 0: just --seeds).") var seconds: Double = 0
    @Option(help: "Events per seed while faults are injected (the liveness phase adds more).") var steps: Int = 2_000
    @Flag(help: "Run the whole-node simulation (three nodes with both agents, log on simulated disks, a client) instead of the Raft core simulator.")
    var node = false
    @Option(help: "With --node: requests the client sends per seed.") var requests: Int = 120
    @Option(help: "With --node: events shown for a failing seed.") var events: Int = 40
    @Flag(help: "With --node: print every event as it happens (for a seed whose process dies).") var trace = false
    @Flag(name: .customLong("snapshots"), help: "With --node: the leader appends snapshot markers (members snapshot, restart from snapshots, and crash or lose power inside snapshot writing).") var withSnapshots = false
    @Option(name: .customLong("compaction-slack-kib"), help: "With --node --snapshots: members compact their logs after snapshots, keeping N/2…N KiB (drawn per seed) behind the oldest kept snapshot, and crashes or power losses strike right after log-start moves.")
    var compactionSlackKiB: Int64?
    @Option(help: "Test only: plant a bug in every core (\(RaftPlantedBug.allCases.map(\.rawValue).joined(separator: ", "))).")
    var plantBug: String?

    func validate() throws {
        guard [3, 5, 7].contains(members) else { throw ValidationError("--members must be 3, 5 or 7") }
        guard DurabilityMode(rawValue: mode) != nil else { throw ValidationError("--mode must be durable or replicated") }
        if let plantBug, RaftPlantedBug(rawValue: plantBug) == nil {
            throw ValidationError("unknown --plant-bug \(plantBug); known: \(RaftPlantedBug.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard seeds >= 1, steps >= 1 else { throw ValidationError("--seeds and --steps must be positive") }
    }

    func run() throws {
        if node {
            try runWholeNode()
            return
        }
        var options = RaftSimulationOptions(memberCount: members, mode: DurabilityMode(rawValue: mode)!, faultSteps: steps)
        options.plantedBug = plantBug.flatMap(RaftPlantedBug.init(rawValue:))
        let clock = ContinuousClock()
        let started = clock.now
        var summary = SimulationSummary()
        var next = seed
        var failure: RaftSimulationResult?
        while summary.seeds < seeds || elapsedSeconds(since: started, clock: clock) < seconds {
            let result = RaftSimulation.run(seed: next, options: options)
            summary.add(result)
            next &+= 1
            if result.violation != nil {
                failure = result
                break
            }
        }
        let elapsed = elapsedSeconds(since: started, clock: clock)
        summary.print(elapsedSeconds: elapsed, options: options)
        if let failure {
            print("VIOLATION at seed \(failure.seed): \(failure.violation!)")
            print("replay: \(RaftSimulation.replayCommand(seed: failure.seed, options: options))")
            throw ExitCode(1)
        }
    }

    func elapsedSeconds(since start: ContinuousClock.Instant, clock: ContinuousClock) -> Double {
        let duration = clock.now - start
        return Double(duration.components.seconds) + Double(duration.components.attoseconds) * 1e-18
    }
}

/// Totals over the seeds of one `keel sim` run.
private struct SimulationSummary {
    var seeds = 0
    var steps = 0
    var faults = 0
    var elections = 0
    var committed = 0
    var stops = 0
    var violations = 0
    var healToLeaderMillis: [Int64] = []
    var leaderlessMillis: [Int64] = []

    mutating func add(_ result: RaftSimulationResult) {
        seeds += 1
        steps += result.steps
        faults += result.faultsInjected
        elections += result.elections
        committed += result.committedEntries
        if result.stoppedAfterMajorityPowerLoss { stops += 1 }
        if result.violation != nil { violations += 1 }
        if let nanos = result.healToLeaderNanos { healToLeaderMillis.append(nanos / 1_000_000) }
        leaderlessMillis.append(contentsOf: result.leaderlessNanos.map { $0 / 1_000_000 })
    }

    func print(elapsedSeconds: Double, options: RaftSimulationOptions) {
        let rate = elapsedSeconds > 0 ? Double(seeds) / elapsedSeconds : 0
        Swift.print("keel sim: \(options.memberCount) members, \(options.mode.rawValue) mode\(options.plantedBug.map { ", planted bug \($0.rawValue)" } ?? "")")
        Swift.print("  seeds          \(seeds) in \(formatted(elapsedSeconds)) s (\(formatted(rate)) seeds/s)")
        Swift.print("  steps          \(steps) (\(seeds > 0 ? steps / seeds : 0) per seed)")
        Swift.print("  faults         \(faults)")
        Swift.print("  elections      \(elections)")
        Swift.print("  committed      \(committed) entries")
        if options.mode == .replicated {
            Swift.print("  stopped        \(stops) seeds (a majority lost power at once: no leader, no divergence, as promised)")
        }
        Swift.print("  leaderless     \(distribution(leaderlessMillis)) (virtual time from losing a leader to electing one)")
        Swift.print("  heal → leader  \(distribution(healToLeaderMillis)) (virtual, after faults stop)")
        Swift.print("  violations     \(violations)")
    }

    private func distribution(_ millis: [Int64]) -> String {
        let sorted = millis.sorted()
        guard let maximum = sorted.last else { return "none" }
        func percentile(_ p: Double) -> Int64 { sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))] }
        return "p50 \(percentile(0.5)) ms, p90 \(percentile(0.9)) ms, p99 \(percentile(0.99)) ms, max \(maximum) ms (n=\(sorted.count))"
    }

    private func formatted(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        let fraction = hundredths % 100
        return "\(hundredths / 100).\(fraction < 10 ? "0" : "")\(fraction)"
    }
}
