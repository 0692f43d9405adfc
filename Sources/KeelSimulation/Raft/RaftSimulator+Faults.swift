import KeelCore
import KeelRaft

/// Crashes, power losses, partitions, loss bursts, transfers and compactions.
extension RaftSimulator {
    /// (Re)starts a member's process over what its disk and page cache hold.
    func start(_ member: Int) {
        let log = members[member].log
        if options.mode == .durable {
            members[member].log.durableEntries = log.entries  // the runtime syncs the log at open
        }
        members[member].core = RaftCore(
            configuration: configurations[member], hardState: members[member].hardState, termIndex: log.termIndex(),
            persistedPosition: log.endPosition, bootID: members[member].bootID, random: random.fork(), nowNanos: nowNanos)
        let firstTick = nowNanos + random.integer(in: 1...Self.tickIntervalNanos)
        queue.schedule(.tick(member: member, incarnation: members[member].incarnation), atNanos: firstTick)
    }

    private func stop(_ member: Int) {
        members[member].core = nil
        members[member].incarnation += 1
        members[member].syncInFlight = false
        members[member].syncWanted = false
        members[member].syncCapture = []
        queue.schedule(.restart(member: member), atNanos: nowNanos + random.integer(in: 10_000_000...800_000_000))
    }

    /// Kinds of fault, drawn with per-seed weights (swarm testing: each seed stresses a different mix).
    enum FaultKind: Int, CaseIterable {
        case powerLoss, processCrash, partition, lossBurst, transfer, compaction
    }

    /// Per-seed weights for each fault kind; a few kinds may be switched off entirely.
    static func swarmWeights(random: inout SeededRandom, powerLossShare: Double) -> [Double] {
        var weights = FaultKind.allCases.map { _ in Double([0, 1, 2, 4][Int(random.integer(in: 0...3))]) }
        if weights.allSatisfy({ $0 == 0 }) { weights[FaultKind.processCrash.rawValue] = 1 }
        let total = weights.reduce(0, +)
        // Keep power losses near the configured share on average, so replicated-mode runs do not
        // mostly end in a (legitimate) majority-power-loss stop.
        weights[FaultKind.powerLoss.rawValue] = weights[FaultKind.powerLoss.rawValue] > 0 ? total * powerLossShare * 2 * Double(random.integer(in: 0...2)) / 2 : 0
        return weights
    }

    private func drawFault() -> FaultKind {
        let total = faultWeights.reduce(0, +)
        var roll = Double(random.next() >> 11) * 0x1.0p-53 * total
        for kind in FaultKind.allCases {
            roll -= faultWeights[kind.rawValue]
            if roll < 0 { return kind }
        }
        return .processCrash
    }

    func injectFault() {
        let up = members.indices.filter { members[$0].isUp }
        result.faultsInjected += 1
        let kind = drawFault()
        if options.trace { print("\(nowNanos / 1000)us FAULT \(kind) up \(up)") }
        switch kind {
        case .powerLoss:
            guard let victim = pick(up) else { return }
            // Only what fdatasync covered survives (plus a torn prefix of the rest); a new boot id.
            members[victim].log.losePower(random: &random)
            members[victim].bootID += 1
            stop(victim)
        case .processCrash:
            // Crash the leader half the time: that is where the interesting schedules are.
            let leaders = up.filter { members[$0].core!.role == .leader }
            guard let victim = random.chance(0.5) ? (pick(leaders) ?? pick(up)) : pick(up) else { return }
            stop(victim)  // the page cache survives: everything written stays
        case .partition:
            partition()
        case .lossBurst:
            lossRate = Double(random.integer(in: 10...50)) / 100
            partitionEpoch += 1
            queue.schedule(.healPartition(epoch: partitionEpoch), atNanos: nowNanos + random.integer(in: 100_000_000...500_000_000))
        case .transfer:
            let leaders = up.filter { members[$0].core!.role == .leader }
            guard let leader = pick(leaders), let target = pick(up.filter { $0 != leader }) else { return }
            step(leader, .transferLeadership(to: MemberID(Int32(target))))
        case .compaction:
            guard let member = pick(up) else { return }
            let commit = members[member].core!.commitPosition
            guard commit > members[member].log.basePosition else { return }
            members[member].log.compact(upTo: commit)
            step(member, .logCompacted(upTo: commit))
        }
    }

    private func pick(_ candidates: [Int]) -> Int? {
        candidates.isEmpty ? nil : candidates[Int(random.integer(in: 0...Int64(candidates.count - 1)))]
    }

    /// A random split, an isolated leader, or some one-way links; healed after 0.1–2 s.
    private func partition() {
        clearPartition()
        let count = members.count
        switch random.integer(in: 0...3) {
        case 0:
            let sides = (0..<count).map { _ in random.chance(0.5) }
            for from in 0..<count { for to in 0..<count where sides[from] != sides[to] { blocked[from * count + to] = true } }
        case 1, 2:
            let leaders = members.indices.filter { members[$0].core?.role == .leader }
            let isolated = pick(leaders) ?? Int(random.integer(in: 0...Int64(count - 1)))
            for other in 0..<count where other != isolated {
                blocked[isolated * count + other] = true
                blocked[other * count + isolated] = true
            }
        default:
            for _ in 0..<random.integer(in: 1...Int64(count)) {
                let from = Int(random.integer(in: 0...Int64(count - 1))), to = Int(random.integer(in: 0...Int64(count - 1)))
                if from != to { blocked[from * count + to] = true }
            }
        }
        partitionEpoch += 1
        queue.schedule(.healPartition(epoch: partitionEpoch), atNanos: nowNanos + random.integer(in: 100_000_000...2_000_000_000))
    }

    /// Cuts `member` off both ways for 0.1–1 s.
    func isolate(_ member: Int) {
        clearPartition()
        let count = members.count
        for other in 0..<count where other != member {
            blocked[member * count + other] = true
            blocked[other * count + member] = true
        }
        partitionEpoch += 1
        queue.schedule(.healPartition(epoch: partitionEpoch), atNanos: nowNanos + random.integer(in: 100_000_000...1_000_000_000))
    }

    func clearPartition() {
        for index in blocked.indices { blocked[index] = false }
        lossRate = faultsEnabled ? 0.01 : 0
    }
}
