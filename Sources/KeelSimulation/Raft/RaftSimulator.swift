import KeelCore
import KeelRaft

/// One simulated member: its Raft core (nil while down), its log model and what its disk keeps.
struct SimulatedMember: Sendable {
    var core: RaftCore?
    var log = SimulatedRaftLog()
    var hardState: RaftHardState
    var bootID: UInt64
    /// Bumped at every crash, so events meant for an earlier life of the process are dropped.
    var incarnation = 0
    var syncInFlight = false
    var syncWanted = false
    var syncCapture: [SimulatedEntry] = []
    /// The last proposal this member accepted as leader: (term, end).
    var lastAccepted: (term: Term, end: LogPosition) = (.zero, .zero)

    var isUp: Bool { core != nil }
}

/// The deterministic Raft simulator (TigerBeetle's VOPR is the model): N cores, a virtual clock, one
/// seeded generator, an in-memory log model per member (positions and terms, no bytes), a hostile
/// network, process crashes and power losses, compaction and snapshots, clients and leadership
/// transfers — and the checkers of `RaftSafetyChecker` after every step. The same seed replays the same run.
public enum RaftSimulation {
    /// Runs one seed: `options.faultSteps` events with faults, then heals everything and checks liveness.
    public static func run(seed: UInt64, options: RaftSimulationOptions) -> RaftSimulationResult {
        let simulator = RaftSimulator(seed: seed, options: options)
        return simulator.run()
    }

    /// The command that replays a seed.
    public static func replayCommand(seed: UInt64, options: RaftSimulationOptions) -> String {
        var command = "keel sim --seeds 1 --seed \(seed) --members \(options.memberCount) --mode \(options.mode.rawValue) --steps \(options.faultSteps)"
        if let bug = options.plantedBug { command += " --plant-bug \(bug.rawValue)" }
        return command
    }
}

final class RaftSimulator {
    static let tickIntervalNanos: Int64 = 10_000_000
    /// Clients keep proposing for this long after healing, then stop so that everything can commit.
    static let healProposalWindowNanos: Int64 = 1_000_000_000

    let options: RaftSimulationOptions
    var random: SeededRandom
    var members: [SimulatedMember] = []
    var configurations: [RaftConfiguration] = []
    var queue = SimulationEventQueue()
    var checker = RaftSafetyChecker()
    var output = RaftOutput(capacity: 512)
    var result: RaftSimulationResult
    var nowNanos: Int64 = 0
    var nextPayload: UInt64 = 1
    var faultsEnabled = true
    var healedAtNanos: Int64 = 0
    var leaderlessSinceNanos: Int64? = 0
    // Network state.
    var blocked: [Bool]
    var lossRate = 0.01
    var partitionEpoch = 0
    var faultWeights: [Double] = []
    var meanFaultIntervalNanos: Int64 = 0
    /// Per seed: the chance that a new leader's links flap right after it wins (so it appends entries
    /// nobody else gets — the raw material of the Raft paper's figure 8).
    var isolateNewLeaderChance = 0.0

    init(seed: UInt64, options: RaftSimulationOptions) {
        self.options = options
        self.random = SeededRandom(seed: seed)
        self.result = RaftSimulationResult(seed: seed)
        let count = options.memberCount
        blocked = Array(repeating: false, count: count * count)
        faultWeights = Self.swarmWeights(random: &random, powerLossShare: options.powerLossShare)
        isolateNewLeaderChance = [0, 0.3, 0.7][Int(random.integer(in: 0...2))]
        meanFaultIntervalNanos = random.integer(in: options.meanFaultIntervalNanos / 3...options.meanFaultIntervalNanos * 2)
        let ids = (0..<count).map { MemberID(Int32($0)) }
        for index in 0..<count {
            var configuration = RaftConfiguration(selfID: ids[index], members: ids, durability: options.mode)
            configuration.plantedBug = options.plantedBug
            configurations.append(configuration)
            let bootID = UInt64(index + 1) << 32
            members.append(SimulatedMember(hardState: RaftHardState(votingBootID: bootID), bootID: bootID))
        }
    }

    func run() -> RaftSimulationResult {
        for index in members.indices { start(index) }
        queue.schedule(.fault, atNanos: nextFaultDelay())
        queue.schedule(.propose, atNanos: nextProposalDelay())
        while result.steps < options.faultSteps && result.violation == nil {
            processNextEvent()
        }
        if result.violation == nil { heal() }
        let deadline = healedAtNanos &+ options.livenessBoundNanos
        while result.violation == nil && nowNanos < deadline {
            processNextEvent()
            if livenessReached() { break }
        }
        if result.violation == nil && !livenessReached() { judgeMissingLiveness() }
        result.committedEntries = checker.committedCount
        return result
    }

    private func processNextEvent() {
        guard let (atNanos, event) = queue.popFirst() else { return }
        nowNanos = atNanos
        result.steps += 1
        handle(event)
        checkNoMemberElectableWithoutCommitted()
        trackLeaderlessTime()
        if let violation = checker.violation, result.violation == nil {
            result.violation = "\(violation) (at \(nowNanos / 1_000_000) ms, step \(result.steps))"
        }
    }

    private func handle(_ event: SimulationEvent) {
        switch event {
        case .deliver(let to, let from, let message, let payload):
            guard members[to].isUp, !isBlocked(from: from, to: to) else { return }
            step(to, .message(from: MemberID(Int32(from)), message), payload: payload)
        case .deliverSnapshot(let to, _, let position, let term, let digest):
            installSnapshot(member: to, position: position, term: term, digest: digest)
        case .tick(let member, let incarnation):
            guard members[member].incarnation == incarnation, members[member].isUp else { return }
            step(member, .tick(nowNanos: nowNanos))
            queue.schedule(.tick(member: member, incarnation: incarnation), atNanos: nowNanos + Self.tickIntervalNanos)
        case .writeCompleted(let member, let incarnation, let position, let term):
            guard members[member].incarnation == incarnation, members[member].isUp else { return }
            step(member, .persisted(upTo: position, term: term))
        case .syncCompleted(let member, let incarnation):
            guard members[member].incarnation == incarnation else { return }
            syncCompleted(member)
        case .restart(let member):
            if !members[member].isUp { start(member) }
        case .fault:
            guard faultsEnabled else { return }
            injectFault()
            queue.schedule(.fault, atNanos: nowNanos + nextFaultDelay())
        case .healPartition(let epoch):
            if epoch == partitionEpoch { clearPartition() }
        case .isolate(let member):
            guard faultsEnabled else { return }
            result.faultsInjected += 1
            isolate(member)
        case .propose:
            propose()
            queue.schedule(.propose, atNanos: nowNanos + nextProposalDelay())
        }
    }

    /// Feeds one input to a member's core and carries out its actions.
    func step(_ member: Int, _ input: RaftInput, payload: ArraySlice<SimulatedEntry> = []) {
        output.removeAll()
        members[member].core!.step(input, into: &output)
        execute(member: member, payload: payload)
        if options.trace { traceStep(member, input) }
        if members[member].core!.refusedUnsafeTruncations > 0 {
            checker.fail("m\(member) was asked to truncate committed entries")
        }
    }

    private func trackLeaderlessTime() {
        let hasLeader = members.contains { $0.core?.role == .leader }
        if hasLeader, let since = leaderlessSinceNanos {
            result.leaderlessNanos.append(nowNanos - since)
            leaderlessSinceNanos = nil
        } else if !hasLeader && leaderlessSinceNanos == nil {
            leaderlessSinceNanos = nowNanos
        }
    }

    private func traceStep(_ member: Int, _ input: RaftInput) {
        let core = members[member].core!
        var line = "\(nowNanos / 1000)us m\(member) [\(core.role) \(core.term) end \(core.endPosition) commit \(core.commitPosition)] "
        switch input {
        case .tick: line += "tick"
        case .message(let from, let message): line += "from m\(from.rawValue): \(message)"
        default: line += "\(input)"
        }
        let actions = output.actions.filter { if case .roleChanged = $0 { true } else if case .send(_, let m) = $0, case .heartbeat = m.body { false } else { true } }
        if !actions.isEmpty { line += " -> \(actions)" }
        print(line)
    }

    private func propose() {
        guard faultsEnabled || nowNanos < healedAtNanos + Self.healProposalWindowNanos else { return }
        let up = members.indices.filter { members[$0].isUp }
        guard !up.isEmpty else { return }
        let leaders = up.filter { members[$0].core!.role == .leader }
        let target = leaders.isEmpty ? up[Int(random.integer(in: 0...Int64(up.count - 1)))]
            : leaders[Int(random.integer(in: 0...Int64(leaders.count - 1)))]
        step(target, .propose(byteCount: 32 * random.integer(in: 1...16)))
    }

    private func nextFaultDelay() -> Int64 { random.integer(in: 1...(2 * meanFaultIntervalNanos)) }
    private func nextProposalDelay() -> Int64 { random.integer(in: 1...(2 * options.meanProposalIntervalNanos)) }

    // MARK: - Liveness

    /// Stops faults, heals the network and restarts every member that is down.
    private func heal() {
        faultsEnabled = false
        healedAtNanos = nowNanos
        clearPartition()
        lossRate = 0
        for index in members.indices where !members[index].isUp { start(index) }
    }

    /// A leader of a stable term committed an entry of its term, every proposal it accepted is
    /// committed, and every member caught up with it.
    private func livenessReached() -> Bool {
        guard !faultsEnabled else { return false }
        let leaders = members.indices.filter { members[$0].core?.role == .leader }
        guard leaders.count == 1, let leader = members[leaders[0]].core else { return false }
        guard leader.termIndex.term(at: leader.commitPosition) == leader.term else { return false }
        if result.healToLeaderNanos == nil { result.healToLeaderNanos = nowNanos - healedAtNanos }
        guard nowNanos >= healedAtNanos + Self.healProposalWindowNanos else { return false }
        let accepted = members[leaders[0]].lastAccepted
        if accepted.term == leader.term && leader.commitPosition < accepted.end { return false }
        // Members that rejoined after a power loss must have been caught up (and vote again) too.
        return members.allSatisfy { $0.core?.commitPosition == leader.commitPosition && $0.core?.catchingUp == false }
    }

    private func judgeMissingLiveness() {
        let catchingUp = members.filter { $0.core?.catchingUp == true }.count
        if options.mode == .replicated && catchingUp >= configurations[0].quorum {
            // Replicated mode's promise: after a majority lost power the cluster stops rather than diverge.
            result.stoppedAfterMajorityPowerLoss = true
            return
        }
        let roles = members.map { member in member.core.map { "\($0.role)/\($0.term)/commit \($0.commitPosition)" } ?? "down" }
        result.violation = "liveness: \(options.livenessBoundNanos / 1_000_000) ms after healing, no leader committed everything (\(roles.joined(separator: ", ")))"
    }
}
