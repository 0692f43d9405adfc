import Glibc
import Histogram
import KeelClient
import KeelCore
import KeelIO
import KeelLocalCluster
import Synchronization

/// Set by SIGINT/SIGTERM during `keel bench cluster`; its loops stop and clean up.
let benchInterrupted = Atomic<Bool>(false)

/// The phases of `keel bench cluster`: each offered rate through the cluster and through the relay,
/// the throughput search, and the failovers. Owns neither the processes' start nor their cleanup.
final class ClusterBenchmark {
    struct Settings {
        var messageBytes: Int
        var sessions: Int
        var inFlightPerSession: Int
        var warmUpNanos: Int64
        var measureNanos: Int64
        var drainNanos: Int64 = 10_000_000_000
    }

    let settings: Settings
    let load: ClusterLoad
    let relay: RelayBaseline
    /// The local cluster, when the benchmark started one (nil with `--members`).
    let cluster: LocalCluster?
    let outputDirectory: String
    /// Histograms per phase, for the plot.
    private(set) var histograms: [(label: String, rate: Double, system: String, histogram: Histogram<UInt64>)] = []
    private(set) var rssAnonMaxBytes: [String: Int64] = [:]

    init(settings: Settings, load: ClusterLoad, relay: RelayBaseline, cluster: LocalCluster?, outputDirectory: String) {
        self.settings = settings
        self.load = load
        self.relay = relay
        self.cluster = cluster
        self.outputDirectory = outputDirectory
    }

    func checkInterrupted() throws {
        if benchInterrupted.load(ordering: .relaxed) { throw BenchmarkError("interrupted") }
    }

    // MARK: - CPU and memory

    /// CPU nanoseconds so far of each process taking part in `system`'s phases.
    func cpuSample(system: String) -> [(name: String, nanos: Int64)] {
        var sample: [(name: String, nanos: Int64)] = []
        if system == "cluster", let cluster {
            for member in cluster.members { sample.append(("node \(member.id)", cluster.processes[member.id]?.cpuNanos ?? 0)) }
        } else if system == "relay" {
            sample += relay.cpuNanos()
        }
        sample.append(("client", ProcessStatistics.ownCPUNanos() ?? 0))
        return sample
    }

    func cpuUsage(from before: [(name: String, nanos: Int64)], to after: [(name: String, nanos: Int64)], wallNanos: Int64) -> [ProcessCPU] {
        var usage: [ProcessCPU] = []
        for (index, end) in after.enumerated() where index < before.count {
            let seconds = Double(max(0, end.nanos - before[index].nanos)) / 1e9
            usage.append(ProcessCPU(name: end.name, seconds: seconds, cores: seconds / (Double(wallNanos) / 1e9)))
        }
        if usage.count > 2 && before.first?.name.hasPrefix("node") == true {
            let nodes = usage.filter { $0.name.hasPrefix("node") }
            usage.append(ProcessCPU(name: "nodes", seconds: nodes.map(\.seconds).reduce(0, +), cores: nodes.map(\.cores).reduce(0, +)))
        }
        return usage
    }

    func sampleMemory() -> [String: Int64]? {
        guard let cluster else { return nil }
        var memory: [String: Int64] = [:]
        for member in cluster.members {
            guard let bytes = cluster.processes[member.id]?.rssAnonBytes else { continue }
            memory["node \(member.id)"] = bytes
            rssAnonMaxBytes["node \(member.id)"] = max(rssAnonMaxBytes["node \(member.id)"] ?? 0, bytes)
        }
        return memory
    }

    // MARK: - Phases

    func schedule(rate: Double, measureNanos: Int64) -> OpenLoopSchedule {
        OpenLoopSchedule(startNanos: monotonicNanos() + 1_000_000, ratePerSecond: rate, warmUpNanos: settings.warmUpNanos, measureNanos: measureNanos)
    }

    /// One rate through the cluster.
    /// `during`, if given, is called on every round of the phase's loop with the time (a snapshot
    /// request goes out from there).
    func clusterPhase(rate: Double, measureNanos: Int64, label: String, during: ((Int64) -> Void)? = nil) throws -> PhaseResult {
        let schedule = schedule(rate: rate, measureNanos: measureNanos)
        load.begin(schedule)
        let progress = ProgressLine(label: label, startNanos: schedule.startNanos, totalNanos: schedule.endNanos - schedule.startNanos)
        var cpuBefore: [(name: String, nanos: Int64)]?, cpuAfter: [(name: String, nanos: Int64)]?
        var backlogMid: Int64 = -1, backlogEnd: Int64 = -1
        let middle = schedule.measureStartNanos + schedule.measureNanos / 2
        while true {
            try checkInterrupted()
            do { try load.step(maxWaitNanos: 1_000_000) } catch { throw BenchmarkError("client: \(error)") }
            let now = monotonicNanos()
            during?(now)
            if cpuBefore == nil && now >= schedule.measureStartNanos { cpuBefore = cpuSample(system: "cluster") }
            if backlogMid < 0 && now >= middle { backlogMid = load.backlog(atNanos: now) }
            if now >= schedule.endNanos {
                if cpuAfter == nil { cpuAfter = cpuSample(system: "cluster") }
                if backlogEnd < 0 { backlogEnd = load.backlog(atNanos: now) }
                // An overloaded phase ends on time: its unsent backlog is counted, not sent.
                if now >= schedule.endNanos + 100_000_000 { load.stopsOffering = true }
                if (load.isScheduleSent || load.stopsOffering) && load.outstanding == 0 { break }
                if now > schedule.endNanos + settings.drainNanos { break }
            }
            progress.update(now: now, sent: load.sent, received: load.received, backlog: load.backlog(atNanos: now))
        }
        progress.finish()
        let recorder = load.recorder
        var result = PhaseResult(
            system: "cluster", offeredPerSecond: rate, achievedPerSecond: recorder.achievedRatePerSecond,
            measuredSeconds: Double(schedule.measureNanos) / 1e9, sent: load.sent, echoed: load.received,
            unanswered: load.sent - load.received, backlogAtMiddle: max(0, backlogMid), backlogAtEnd: max(0, backlogEnd),
            held: PhaseResult.held(offered: rate, achieved: recorder.achievedRatePerSecond, sent: load.sent, echoed: load.received,
                                   scheduled: schedule.messageCount, backlogMid: max(0, backlogMid), backlogEnd: max(0, backlogEnd)),
            latency: PercentileSummary(recorder.histogram),
            cpu: cpuUsage(from: cpuBefore ?? [], to: cpuAfter ?? [], wallNanos: schedule.measureNanos),
            rssAnonBytes: sampleMemory())
        result.hgrmFile = try writeHistogram(recorder.histogram, system: "cluster", rate: rate, label: label)
        return result
    }

    /// The same rate through the relay baseline.
    func relayPhase(rate: Double, measureNanos: Int64, label: String) throws -> PhaseResult {
        try checkInterrupted()
        let schedule = schedule(rate: rate, measureNanos: measureNanos)
        let progress = ProgressLine(label: label, startNanos: schedule.startNanos, totalNanos: schedule.endNanos - schedule.startNanos)
        // CPU is sampled from the receiving loop as it crosses the window's edges.
        let sampler = WindowSampler(schedule: schedule) { self.cpuSample(system: "relay") }
        var keepAliveFailure: ClusterClientError?
        let outcome = try relay.run(schedule, inFlightMax: Int64(settings.sessions * settings.inFlightPerSession),
                                    drainNanos: settings.drainNanos, progressLine: progress) { now in
            sampler.tick(now)
            do throws(ClusterClientError) { try self.load.keepSessionsAlive(now: now) } catch { keepAliveFailure = error }
        }
        if let keepAliveFailure { throw BenchmarkError("client (idle during the relay phase): \(keepAliveFailure)") }
        let recorder = outcome.recorder
        var result = PhaseResult(
            system: "relay", offeredPerSecond: rate, achievedPerSecond: recorder.achievedRatePerSecond,
            measuredSeconds: Double(schedule.measureNanos) / 1e9, sent: outcome.sent, echoed: outcome.received,
            unanswered: outcome.sent - outcome.received, backlogAtMiddle: outcome.backlogMid, backlogAtEnd: outcome.backlogEnd,
            held: PhaseResult.held(offered: rate, achieved: recorder.achievedRatePerSecond, sent: outcome.sent, echoed: outcome.received,
                                   scheduled: schedule.messageCount, backlogMid: outcome.backlogMid, backlogEnd: outcome.backlogEnd),
            latency: PercentileSummary(recorder.histogram),
            cpu: cpuUsage(from: sampler.before ?? [], to: sampler.after ?? [], wallNanos: schedule.measureNanos))
        result.hgrmFile = try writeHistogram(recorder.histogram, system: "relay", rate: rate, label: label)
        return result
    }

    private func writeHistogram(_ histogram: Histogram<UInt64>, system: String, rate: Double, label: String) throws -> String {
        let name = "\(system)-\(label.replacingOccurrences(of: " ", with: "-"))-\(Int64(rate)).hgrm"
        try HgrmFile.write(histogram, to: "\(outputDirectory)/\(name)")
        if !label.hasPrefix("search") { histograms.append((label, rate, system, histogram)) }
        return name
    }

    func compare(rate: Double, cluster: PhaseResult, relay: PhaseResult) -> RateComparison {
        let ratios = zip(cluster.latency.columns, relay.latency.columns).map { Double($0) / Double(max(1, $1)) }
        return RateComparison(ratePerSecond: rate, cluster: cluster, relay: relay, latencyRatios: ratios)
    }

    // MARK: - Sustained throughput

    /// Doubles the rate from `startRate` while it is held for `sustainNanos`, then bisects between
    /// the last rate held and the first not held, until they are within 25% or `maxSteps` ran.
    func searchThroughput(system: String, startRate: Double, sustainNanos: Int64, maxSteps: Int) throws -> ThroughputSearch {
        var rate = startRate, lastHeld: Double?, firstFailed: Double?
        var steps: [PhaseResult] = []
        for step in 0..<maxSteps {
            let label = "search \(step + 1)"
            let result = system == "cluster"
                ? try clusterPhase(rate: rate, measureNanos: sustainNanos, label: label)
                : try relayPhase(rate: rate, measureNanos: sustainNanos, label: label)
            steps.append(result)
            defer { fflush(nil) }
            print("  \(system) at \(grouped(rate)) msg/s: \(result.held ? "held" : "not held") (achieved \(grouped(result.achievedPerSecond))/s, backlog \(result.backlogAtMiddle) → \(result.backlogAtEnd), p99 \(micros(result.latency.p99Nanos)) µs)")
            if result.held { lastHeld = rate } else { firstFailed = rate }
            if let low = lastHeld, let high = firstFailed {
                if high / low < 1.25 { break }
                rate = ((low + high) / 2).rounded()
            } else if lastHeld != nil {
                rate *= 2
            } else {
                rate = (rate / 2).rounded()
            }
        }
        return ThroughputSearch(system: system, sustainedPerSecond: lastHeld ?? 0, steps: steps)
    }

    // MARK: - Failover

    /// Kills the leader `count` times under a steady `rate`, each time measuring from the kill to
    /// the first echo after the client has reattached its session to the new leader (or opened a new
    /// one), then restarts the killed member and waits for it to catch up.
    func failovers(count: Int, rate: Double) throws -> FailoverResult {
        guard let cluster else { throw BenchmarkError("failover needs the local cluster") }
        var times: [Int64] = [], catchUps: [Int64] = []
        var histogram = CorrectedLatencyRecorder.makeHistogram()
        for round in 1...count {
            try checkInterrupted()
            let schedule = OpenLoopSchedule(startNanos: monotonicNanos(), ratePerSecond: rate, warmUpNanos: 0, measureNanos: 120_000_000_000)
            load.begin(schedule)
            try runLoad(forNanos: 500_000_000)
            guard let leader = load.clients[0].leaderMemberID?.rawValue ?? cluster.leader() else { throw BenchmarkError("no leader to kill") }
            let attachmentsBefore = load.clients[0].attachments
            cluster.kill9(leader)
            let killedAt = monotonicNanos()
            let deadline = killedAt + 60_000_000_000
            while load.attachmentsAtLastResponse[0] <= attachmentsBefore {
                try checkInterrupted()
                if monotonicNanos() > deadline { throw BenchmarkError("no echo within 60 s of killing leader \(leader)") }
                do { try load.step(maxWaitNanos: 1_000_000) } catch { throw BenchmarkError("client during failover: \(error)") }
            }
            let failover = load.lastResponseNanos - killedAt
            times.append(failover)
            histogram.record(UInt64(max(failover, 1_000)))
            try runLoad(forNanos: 300_000_000)
            load.stopsOffering = true
            try runLoad(forNanos: 200_000_000)
            do { try cluster.start(leader) } catch { throw BenchmarkError("restarting node \(leader): \(error)") }
            let caughtUp = try waitForCatchUp(member: leader, since: killedAt)
            catchUps.append(caughtUp)
            print("  failover \(round)/\(count): node \(leader) killed, next echo after \(failover / 1_000_000) ms (new leader \(load.clients[0].leaderMemberID?.rawValue ?? -1)); restarted, caught up \(caughtUp / 1_000_000) ms after the kill")
        }
        return FailoverResult(count: count, rateDuringFailoverPerSecond: rate, timesNanos: times, summary: PercentileSummary(histogram), catchUpNanos: catchUps)
    }

    func runLoad(forNanos duration: Int64) throws {
        let end = monotonicNanos() + duration
        while monotonicNanos() < end {
            try checkInterrupted()
            do { try load.step(maxWaitNanos: 1_000_000) } catch { throw BenchmarkError("client: \(error)") }
        }
    }

    /// Waits (keeping the sessions alive) until `member`'s commit position equals the leader's.
    func waitForCatchUp(member: Int32, since: Int64) throws -> Int64 {
        guard let cluster else { return 0 }
        let deadline = monotonicNanos() + 60_000_000_000
        while monotonicNanos() < deadline {
            try runLoad(forNanos: 20_000_000)
            if let leader = cluster.leader(), leader != member, let mine = cluster.counters(member), let theirs = cluster.counters(leader),
                mine.commitPosition == theirs.commitPosition, mine.commitPosition > 0
            {
                return monotonicNanos() - since
            }
        }
        throw BenchmarkError("node \(member) did not catch up within 60 s:\n\(cluster.tail(member))")
    }
}

/// Samples a value when a schedule's measured window opens and when it closes, from whatever loop
/// calls `tick`.
final class WindowSampler {
    let schedule: OpenLoopSchedule
    let sample: () -> [(name: String, nanos: Int64)]
    private(set) var before: [(name: String, nanos: Int64)]?
    private(set) var after: [(name: String, nanos: Int64)]?

    init(schedule: OpenLoopSchedule, sample: @escaping () -> [(name: String, nanos: Int64)]) {
        self.schedule = schedule
        self.sample = sample
    }

    func tick(_ now: Int64) {
        if before == nil && now >= schedule.measureStartNanos { before = sample() }
        if after == nil && now >= schedule.endNanos { after = sample() }
    }
}
