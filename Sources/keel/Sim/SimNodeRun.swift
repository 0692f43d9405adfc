import ArgumentParser
import KeelCore
import KeelSimulation

/// `keel sim --node`: the whole-node simulation over many seeds, as a time box with a floor of seeds.
extension SimCommand {
    func runWholeNode() throws {
        guard members == 3, plantBug == nil else { throw ValidationError("--node runs 3 members and plants no bugs") }
        guard requests >= 1 else { throw ValidationError("--requests must be positive") }
        var options = WholeNodeSimulationOptions(mode: DurabilityMode(rawValue: mode)!, requestCount: requests)
        options.eventsReported = events
        options.snapshots = withSnapshots
        if let compactionSlackKiB {
            guard withSnapshots, compactionSlackKiB >= 0 else { throw ValidationError("--compaction-slack-kib needs --snapshots and a non-negative size") }
            options.compactionSlackMaxBytes = compactionSlackKiB << 10
        }
        WholeNodeCluster.traceEvents = trace
        let clock = ContinuousClock()
        let started = clock.now
        var summary = WholeNodeSummary()
        var next = seed
        var failure: WholeNodeSimulationResult?
        SimCrashReport.install()
        while summary.seeds < seeds || elapsedSeconds(since: started, clock: clock) < seconds {
            SimCrashReport.prepare("\nkeel sim --node: the process died running seed \(next)\nreplay: \(WholeNodeSimulation.replayCommand(seed: next, options: options))\n")
            let result = WholeNodeSimulation.run(seed: next, options: options)
            summary.add(result)
            next &+= 1
            if result.violation != nil {
                failure = result
                break
            }
        }
        summary.print(elapsedSeconds: elapsedSeconds(since: started, clock: clock), options: options)
        if let failure {
            print("VIOLATION at seed \(failure.seed): \(failure.violation!)")
            print("last events:")
            for event in failure.recentEvents { print("  \(event)") }
            print("replay: \(WholeNodeSimulation.replayCommand(seed: failure.seed, options: options))")
            throw ExitCode(1)
        }
    }
}

/// Totals over the seeds of one `keel sim --node` run.
private struct WholeNodeSummary {
    var seeds = 0
    var faults = 0
    var processCrashes = 0
    var powerLosses = 0
    var transfers = 0
    var suspensions = 0
    var acknowledged = 0
    var applied = 0
    var stops = 0
    var stillCatchingUp = 0
    var healMillis: [Int64] = []
    var snapshotsTaken = 0
    var restartsFromSnapshot = 0
    var logStartMoves = 0
    var wipes = 0
    var snapshotsInstalled = 0
    var snapshotCuts = 0
    var compactions = 0
    var seedsCompacted = 0

    mutating func add(_ result: WholeNodeSimulationResult) {
        seeds += 1
        faults += result.faultsInjected
        processCrashes += result.processCrashes
        powerLosses += result.powerLosses
        transfers += result.leadershipTransfers
        suspensions += result.suspensions
        acknowledged += result.acknowledged
        applied += result.appliedEntries
        if result.stoppedAfterMajorityPowerLoss { stops += 1 }
        stillCatchingUp += result.membersStillCatchingUp.count
        if let nanos = result.healToConvergedNanos { healMillis.append(nanos / 1_000_000) }
        snapshotsTaken += result.snapshotsTaken
        restartsFromSnapshot += result.restartsFromSnapshot
        logStartMoves += result.logStartMoves
        wipes += result.wipes
        snapshotsInstalled += result.snapshotsInstalled
        snapshotCuts += result.snapshotCutsStruck
        compactions += result.compactions
        if result.highestLogStart > 0 { seedsCompacted += 1 }
    }

    func print(elapsedSeconds: Double, options: WholeNodeSimulationOptions) {
        let rate = elapsedSeconds > 0 ? Double(seeds) / elapsedSeconds : 0
        Swift.print("keel sim --node: 3 whole nodes, \(options.mode.rawValue) mode, \(options.requestCount) requests per seed")
        Swift.print("  seeds            \(seeds) in \(format(elapsedSeconds)) s (\(format(rate)) seeds/s)")
        Swift.print("  faults           \(faults) (\(processCrashes) process crashes, \(powerLosses) power losses, \(transfers) leadership transfers, \(suspensions) suspensions)")
        Swift.print("  acknowledged     \(acknowledged) requests")
        Swift.print("  applied          \(applied) session messages per replica, summed")
        if options.mode == .replicated {
            Swift.print("  stopped          \(stops) seeds (a majority lost power at once)")
            Swift.print("  never caught up  \(stillCatchingUp) members still non-voting after their power loss at the end")
        }
        let sorted = healMillis.sorted()
        if let last = sorted.last {
            Swift.print("  heal → converged p50 \(sorted[sorted.count / 2]) ms, max \(last) ms (virtual)")
        }
        if options.snapshots {
            Swift.print("  snapshots        \(snapshotsTaken) written, \(restartsFromSnapshot) restarts from one, \(snapshotCuts) crashes or power losses inside snapshot writing\(options.compactionSlackMaxBytes != nil ? " or right after a log-start move" : "")")
            Swift.print("  shipping         \(logStartMoves) leader log-start moves (test hook), \(wipes) members wiped, \(snapshotsInstalled) snapshots installed from a leader")
        }
        if options.compactionSlackMaxBytes != nil {
            Swift.print("  compaction       \(compactions) log-start moves; \(seedsCompacted) of \(seeds) seeds ended with a log start past 0")
        }
    }

    private func format(_ value: Double) -> String {
        let hundredths = Int((value * 100).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100)"
    }
}
