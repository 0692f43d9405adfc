import KeelCore
import KeelRuntime

/// The whole-node simulation (issue 6 §5): three members — log on simulated storage, consensus and
/// service agents, a recording echo service — and a client, on one thread over the simulator's
/// network and clock, with seeded faults (delay, cuts, partitions, process crashes, power losses).
/// After the faults stop and everything is healed, it checks:
/// - every replica applies the same entries in the same order, and holds the same session table;
/// - exactly-once: every request is applied once, though the client resends after every failover
///   and silence (reattaching its session, original sequences); only requests outstanding when the
///   cluster closed a session may be applied twice;
/// - no replica applies, at a position, an entry another replica applied differently there;
/// - every request the client saw acknowledged was held by a majority when acknowledged, and is
///   applied on every replica at the end, after every crash (durable: any crashes and power losses;
///   replicated: crashes, and power losses while a majority stays caught up);
/// - the services' order-independent state digests agree at every position where two replicas took
///   one; timers fire exactly once each, in log order, never early, never after a cancel — across
///   leader changes, crashes and restarts — and every scheduled timer has fired or been cancelled
///   at the end;
/// - liveness: within a bound of virtual time after healing, all requests are acknowledged and the
///   replicas converge.
public enum WholeNodeSimulation {
    /// Runs one seed.
    public static func run(seed: UInt64, options: WholeNodeSimulationOptions) -> WholeNodeSimulationResult {
        var run: WholeNodeRun
        do {
            run = try WholeNodeRun(seed: seed, options: options)
        } catch {
            var result = WholeNodeSimulationResult(seed: seed)
            result.violation = "the cluster did not start: \(error)"
            return result
        }
        return run.execute()
    }

    /// The command that replays `seed`.
    public static func replayCommand(seed: UInt64, options: WholeNodeSimulationOptions) -> String {
        "keel sim --node --mode \(options.mode.rawValue) --seed \(seed) --seeds 1 --requests \(options.requestCount)\(options.snapshots ? " --snapshots" : "")\(options.compactionSlackMaxBytes.map { " --compaction-slack-kib \($0 >> 10)" } ?? "")"
    }
}

/// The state of one seed's run.
struct WholeNodeRun {
    let options: WholeNodeSimulationOptions
    let cluster: WholeNodeCluster
    let client: WholeNodeClient
    var random: SeededRandom
    var result: WholeNodeSimulationResult
    let checks: WholeNodeChecks
    var restartAtNanos: [Int64?] = [nil, nil, nil]
    var healAtNanos: Int64?
    /// A suspension lasts until then; after it the run keeps resuming the cluster (every 100 ms)
    /// while a member still applies it as suspended.
    var suspendedUntilNanos: Int64?
    var nextResumeNanos: Int64 = 0

    init(seed: UInt64, options: WholeNodeSimulationOptions) throws {
        self.options = options
        random = SeededRandom(seed: seed ^ 0x6e6f_6465_7369_6d00)
        result = WholeNodeSimulationResult(seed: seed)
        let networkFaults = options.networkFaults
            ? SimulatedNetworkFaults(latencyTailChance: 0.02, latencyTailMaxNanos: 30_000_000, connectionCutChance: 0.0005, retransmissionTimeoutNanos: 800_000_000)
            : SimulatedNetworkFaults()
        var disk = SimulatedFaultModel.adversarial
        disk.pendingOperationHappenedChance = 0.5
        let interval: Int64? = options.snapshots ? random.integer(in: (32 << 10)...(256 << 10)) : nil
        var slack: Int64?
        if options.snapshots, let maximum = options.compactionSlackMaxBytes { slack = random.integer(in: (maximum / 2)...maximum) }
        // A third of the seeds authenticate member connections with a cluster secret.
        let secret: [UInt8]? = seed % 3 == 2 ? Array("nodesim secret \(seed)".utf8) : nil
        cluster = try WholeNodeCluster(
            seed: seed, durability: options.mode, networkFaults: networkFaults, diskFaults: disk, snapshotIntervalBytes: interval,
            compactionSlackBytes: slack, clusterSecret: secret)
        client = WholeNodeClient(
            network: cluster.network, endpoints: cluster.endpoints, time: cluster.time,
            requestCount: options.requestCount, windowRequests: options.windowRequests, random: &random)
        checks = WholeNodeChecks(cluster: cluster, mode: options.mode)
        let checks = checks
        let client = client
        cluster.onApply = { checks.applied(member: $0, entry: $1) }
        let digests = ServiceDigestCheck()
        cluster.onDigest = { member, position, digest in
            if let problem = digests.record(member: member, position: position, digest: digest) { checks.fail(problem) }
        }
        cluster.onProblem = { checks.fail("m\($0) \($1)") }
        cluster.onSnapshotCut = { index, powerLoss in
            if powerLoss { checks.willLosePower(index) } else { checks.willStop(index) }
        }
        client.onAcknowledged = { checks.acknowledged(key: $0) }
        client.spreadNanos = options.faultPhaseNanos * 3 / 4
        client.start(at: Int(random.integer(in: 0...2)))
    }

    mutating func execute() -> WholeNodeSimulationResult {
        do {
            try faultPhase()
            if checks.violation == nil { try healAndConverge() }
        } catch {
            checks.fail("a member threw: \(error)")
        }
        if checks.violation == nil, let problem = client.protocolViolation { checks.fail("client: \(problem)") }
        result.violation = checks.violation
        result.compactions = cluster.compactions
        result.highestLogStart = cluster.members.map { $0.consensus.log.startPosition.rawValue }.max() ?? 0
        result.acknowledged = client.acknowledged.count
        result.sessionsLost = client.sessionsLost
        result.responsesUnavailable = client.responsesUnavailable
        result.recentEvents = Array(cluster.events.suffix(options.eventsReported))
        return result
    }

    var nowNanos: Int64 { cluster.time.nowNanos }

    mutating func faultPhase() throws {
        var nextFaultNanos = nextInterval()
        while nowNanos < options.faultPhaseNanos && checks.violation == nil {
            try cluster.round(client: client)
            checks.afterRound()
            takeDownCutMembers()
            for index in 0..<3 {
                if let at = restartAtNanos[index], nowNanos >= at {
                    restartAtNanos[index] = nil
                    try restart(index)
                }
            }
            if let at = healAtNanos, nowNanos >= at {
                healAtNanos = nil
                cluster.network.healAll()
                cluster.note("FAULT heal all links")
            }
            superviseSuspension()
            if nowNanos >= nextFaultNanos {
                injectFault()
                nextFaultNanos = nowNanos + nextInterval()
            }
        }
    }

    /// Members a cut took down inside a snapshot: the checks hear of it as of any crash, and they
    /// come back later like any crashed member.
    mutating func takeDownCutMembers() {
        for index in cluster.cutsStruck {
            result.snapshotCutsStruck += 1
            restartAtNanos[index] = nowNanos + random.integer(in: 20_000_000...1_500_000_000)
        }
        cluster.cutsStruck.removeAll()
    }

    /// Restarts a member, counting what its previous incarnation did with snapshots.
    mutating func restart(_ index: Int) throws {
        result.snapshotsTaken += Int(cluster.members[index].shared.snapshotsTaken.load(ordering: .relaxed))
        result.snapshotsInstalled += cluster.members[index].consensus.snapshotsInstalled
        try cluster.restart(index)
        if cluster.members[index].restoredFrom != nil { result.restartsFromSnapshot += 1 }
    }

    mutating func nextInterval() -> Int64 {
        let mean = options.meanFaultIntervalNanos
        return random.integer(in: (mean / 4)...(mean * 7 / 4))
    }

    mutating func pickMember() -> Int {
        let leaders = cluster.leaders
        if let leader = leaders.first, random.chance(0.5) { return leader }
        return Int(random.integer(in: 0...2))
    }

    mutating func injectFault() {
        // As compaction would after snapshots: members down or cut off meanwhile then need a snapshot.
        // (Only without real compaction, which moves log starts itself, segment-aligned and within its limits.)
        if options.snapshots && options.logStartMoves && options.compactionSlackMaxBytes == nil && random.chance(0.5)
            && (try? cluster.moveLeaderLogStart()) == true
        {
            result.logStartMoves += 1
        }
        let index = pickMember()
        let host = cluster.endpoints[index].host
        let other = cluster.endpoints[(index + 1 + Int(random.integer(in: 0...1))) % 3].host
        let draw = random.integer(in: 0...(options.snapshots ? 7 : 6))
        switch draw {
        case 0 where options.processCrashes && cluster.members[index].isUp:
            checks.willStop(index)
            cluster.crash(index)
            result.processCrashes += 1
            restartAtNanos[index] = nowNanos + random.integer(in: 20_000_000...1_500_000_000)
        case 1 where options.powerLosses && cluster.members[index].isUp && checks.mayLosePower(index):
            checks.willLosePower(index)
            cluster.powerLoss(index)
            result.powerLosses += 1
            restartAtNanos[index] = nowNanos + random.integer(in: 20_000_000...1_500_000_000)
        case 2 where options.networkFaults:
            cluster.network.isolate(host)
            cluster.note("FAULT isolate m\(index)")
            healAtNanos = nowNanos + random.integer(in: 100_000_000...1_500_000_000)
        case 3 where options.networkFaults:
            cluster.network.blockLink(from: host, to: other)
            cluster.note("FAULT block \(host) → \(other)")
            healAtNanos = nowNanos + random.integer(in: 100_000_000...1_500_000_000)
        case 4 where options.networkFaults:
            cluster.network.cutConnections(between: host, and: other)
            cluster.note("FAULT cut \(host) ↔ \(other)")
        case 5 where options.snapshots && options.snapshotCuts && cluster.members[index].isUp:
            let powerLoss = options.mode == .durable && options.powerLosses && random.chance(0.5)
            if cluster.compactionSlackBytes != nil && random.chance(0.5) {
                cluster.armCompactionCut(index, powerLoss: powerLoss)
            } else {
                cluster.armSnapshotCut(index, afterOperations: Int(random.integer(in: 0...40)), powerLoss: powerLoss)
            }
        case 6 where options.snapshots && options.wipes && cluster.members.allSatisfy({ $0.isUp && !$0.consensus.isCatchingUp })
            && checks.mayLosePower(index):
            checks.willLosePower(index)
            checks.wiped(index)
            cluster.wipe(index)
            result.wipes += 1
            restartAtNanos[index] = nowNanos + random.integer(in: 20_000_000...1_500_000_000)
        case _ where draw == (options.snapshots ? 7 : 6) && (options.leadershipTransfers || options.suspensions):
            guard let leader = cluster.leaders.first, cluster.members[leader].isUp else { return }
            if options.suspensions && (!options.leadershipTransfers || random.chance(0.5)) {
                guard suspend(leader) else { return }
            } else {
                let target = (leader + 1 + Int(random.integer(in: 0...1))) % 3
                guard cluster.members[leader].consensus.startLeadershipTransfer(to: MemberID(Int32(target))) else { return }
                cluster.note("FAULT transfer leadership m\(leader) → m\(target)")
                result.leadershipTransfers += 1
            }
        default:
            return
        }
        result.faultsInjected += 1
    }

    /// Stops faults, heals the network, restarts every stopped member, and waits (bounded) for all
    /// requests to be acknowledged and the replicas to converge; then checks them.
    mutating func healAndConverge() throws {
        cluster.network.healAll()
        cluster.network.faults = SimulatedNetworkFaults()
        healAtNanos = nil
        cluster.disarmSnapshotCuts()
        takeDownCutMembers()
        for index in 0..<3 where !cluster.members[index].isUp {
            restartAtNanos[index] = nil
            try restart(index)
        }
        cluster.note("HEALED")
        let healedNanos = nowNanos
        let deadline = nowNanos + options.livenessBoundNanos
        var converged = false
        while nowNanos < deadline && checks.violation == nil {
            try cluster.round(client: client)
            checks.afterRound()
            superviseSuspension()
            if client.isDone && nowNanos % 10_000_000 == 0 && checks.converged() && cluster.timersSettled
                && checks.membersStillCatchingUp.isEmpty
            {
                converged = true
                break
            }
        }
        guard checks.violation == nil else { return }
        result.membersStillCatchingUp = checks.membersStillCatchingUp
        if !converged {
            if checks.majorityLostPowerUncaughtUp {
                result.stoppedAfterMajorityPowerLoss = true
                return
            }
            let state = cluster.members.enumerated().map { index, member in
                "m\(index) \(member.consensus.role)\(member.consensus.isCatchingUp ? " (catching up)" : "") term \(member.consensus.term.rawValue) log start \(member.consensus.log.startPosition.rawValue) commit \(member.consensus.commitPosition.rawValue) appended \(member.consensus.log.appendedPosition.rawValue) applied \(member.recorder.applied.count) timers pending \(member.service.timers.count)"
            }
            // A member whose log ends before the leader's log start can only be caught up by the
            // leader's snapshot (issue 10 §2): say so, as that is the likely cause.
            let leaderStart = cluster.leaders.first.map { cluster.members[$0].consensus.log.startPosition } ?? .zero
            let behind = cluster.members.indices.filter { cluster.members[$0].consensus.log.appendedPosition < leaderStart }
            let cause = behind.isEmpty ? "" : " — \(behind.map { "m\($0)" }.joined(separator: ", ")) ends before the leader's log start \(leaderStart.rawValue) and needs its snapshot shipped"
            checks.fail("liveness: not converged \(options.livenessBoundNanos / 1_000_000) ms after healing (client acknowledged \(client.acknowledged.count) of \(options.requestCount))\(cause); \(state.joined(separator: "; "))")
            return
        }
        result.snapshotsTaken += cluster.members.reduce(0) { $0 + Int($1.shared.snapshotsTaken.load(ordering: .relaxed)) }
        result.snapshotsInstalled += cluster.members.reduce(0) { $0 + $1.consensus.snapshotsInstalled }
        result.healToConvergedNanos = nowNanos - healedNanos
        result.appliedEntries = cluster.members[0].recorder.applied.count
        result.membersStillCatchingUp = checks.membersStillCatchingUp
        checks.finalCheck(acknowledged: client.acknowledged, maybeAppliedTwice: client.keysMaybeAppliedTwice)
    }
}
