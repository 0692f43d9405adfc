import KeelCore
import KeelRaft

/// A hand-driven cluster for scenario tests: each step is explicit, messages wait in a queue until a
/// test delivers them (all, or those a filter picks), and time moves only when a test says so.
struct ScenarioHarness {
    struct Envelope {
        var from: MemberID
        var to: MemberID
        var message: RaftMessage
    }

    var cores: [RaftCore]
    var nowNanos: Int64 = 0
    var queue: [Envelope] = []
    /// Every action each member produced, in order (for assertions on the exact output).
    var actions: [[RaftAction]]
    var hardStates: [RaftHardState]
    var commits: [LogPosition]
    /// Members whose messages (in and out) are dropped.
    var isolated: Set<MemberID> = []
    /// Report every append as persisted right after the step that produced it.
    var persistImmediately = true
    var snapshotRequests: [(from: MemberID, to: MemberID)] = []

    static let ids = (0..<7).map { MemberID(Int32($0)) }

    /// A cluster of `count` members, each with the given log (default empty) and term.
    init(count: Int, durability: DurabilityMode = .durable, logs: [TermIndex]? = nil, terms: [Term]? = nil,
         plantedBug: RaftPlantedBug? = nil, configure: (inout RaftConfiguration) -> Void = { _ in }) {
        let members = Array(Self.ids.prefix(count))
        cores = []
        hardStates = []
        for index in 0..<count {
            var configuration = RaftConfiguration(selfID: members[index], members: members, durability: durability)
            configuration.plantedBug = plantedBug
            configure(&configuration)
            let hardState = RaftHardState(term: terms?[index] ?? .zero, votingBootID: 1)
            let log = logs?[index] ?? TermIndex()
            cores.append(RaftCore(
                configuration: configuration, hardState: hardState, termIndex: log, persistedPosition: log.endPosition,
                bootID: 1, random: SeededRandom(seed: UInt64(index + 1)), nowNanos: 0))
            hardStates.append(hardState)
        }
        actions = Array(repeating: [], count: count)
        commits = cores.map { $0.commitPosition }
    }

    /// A log holding `runs` as (term, end position) pairs from position 0.
    static func log(_ runs: [(Int64, Int64)]) -> TermIndex {
        var index = TermIndex()
        for (term, end) in runs { index.append(term: Term(term), to: LogPosition(end)) }
        return index
    }

    func core(_ member: Int) -> RaftCore { cores[member] }

    mutating func step(_ member: Int, _ input: RaftInput) {
        var output = RaftOutput()
        cores[member].step(input, into: &output)
        var toPersist: (LogPosition, Term)?
        for action in output.actions {
            actions[member].append(action)
            switch action {
            case .persistHardState(let state): hardStates[member] = state
            case .append(_, let end, let term, _): toPersist = (end, term)
            case .send(let to, let message):
                queue.append(Envelope(from: Self.ids[member], to: to, message: message))
            case .commitAdvanced(let position): commits[member] = position
            case .sendSnapshot(let to): snapshotRequests.append((Self.ids[member], to))
            default: break
            }
        }
        if persistImmediately, let (end, term) = toPersist {
            step(member, .persisted(upTo: end, term: term))
        }
    }

    /// Moves the clock on by `nanos` and ticks the given members (default: all).
    mutating func advance(byNanos nanos: Int64, ticking members: [Int]? = nil) {
        nowNanos += nanos
        for member in members ?? Array(cores.indices) { step(member, .tick(nowNanos: nowNanos)) }
    }

    /// Ticks in 10 ms steps for `nanos`, delivering messages between ticks.
    mutating func run(forNanos nanos: Int64, ticking members: [Int]? = nil) {
        let end = nowNanos + nanos
        while nowNanos < end {
            advance(byNanos: 10_000_000, ticking: members)
            deliverAll()
        }
    }

    /// Delivers queued messages (and what they cause) until the queue is empty or `rounds` passes ran.
    /// Messages the filter rejects, or that touch an isolated member, are dropped.
    mutating func deliverAll(rounds: Int = 100, where keep: (Envelope) -> Bool = { _ in true }) {
        for _ in 0..<rounds where !queue.isEmpty {
            let batch = queue
            queue = []
            for envelope in batch where keep(envelope) && !isolated.contains(envelope.from) && !isolated.contains(envelope.to) {
                step(Int(envelope.to.rawValue), .message(from: envelope.from, envelope.message))
            }
        }
    }

    /// Makes `member` campaign at once, then delivers everything.
    mutating func elect(_ member: Int) {
        step(member, .campaign)
        deliverAll()
    }

    var leaders: [Int] { cores.indices.filter { cores[$0].role == .leader } }

    func sent(by member: Int) -> [RaftMessage] {
        actions[member].compactMap { if case .send(_, let message) = $0 { message } else { nil } }
    }
}
