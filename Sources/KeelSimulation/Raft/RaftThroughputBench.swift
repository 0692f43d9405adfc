import KeelCore
import KeelRaft

/// Raft core throughput (issue 4, section 4): three cores, a perfect in-memory network, positions only
/// (no bytes copied). The leader proposes batches of `entriesPerProposal` 32-byte entries; every append,
/// response and persistence report is a real `step` of a real core; writes are reported durable at once.
/// Called by `keel bench raft` and by the Benchmarks package.
public enum RaftThroughputBench {
    /// What one run measured.
    public struct Result: Sendable {
        /// Proposals committed.
        public var proposals: Int
        /// Entries per proposal.
        public var entriesPerProposal: Int
        /// Wall-clock nanoseconds from the first proposal until the last was committed on the leader.
        public var elapsedNanos: Int64
        /// Core steps taken (all three members).
        public var steps: Int
        /// Committed proposals per second.
        public var proposalsPerSecond: Double { Double(proposals) / (Double(elapsedNanos) / 1e9) }
        /// Committed entries per second.
        public var entriesPerSecond: Double { proposalsPerSecond * Double(entriesPerProposal) }
    }

    private struct Envelope {
        var to: Int32
        var from: Int32
        var message: RaftMessage
    }

    /// Runs `proposals` proposals through an elected three-member cluster and times them.
    public static func run(proposals: Int, entriesPerProposal: Int = 256, mode: DurabilityMode = .durable) -> Result {
        var cluster = BenchCluster(mode: mode)
        cluster.electFirstMember()
        let clock = ContinuousClock()
        let started = clock.now
        let proposalBytes = Int64(entriesPerProposal) * 32
        for _ in 0..<proposals {
            cluster.step(0, .propose(byteCount: proposalBytes))
            cluster.pump()
        }
        let target = cluster.cores[0].endPosition
        precondition(cluster.cores[0].commitPosition == target, "every proposal commits on a perfect network")
        let duration = clock.now - started
        let nanos = duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000
        return Result(proposals: proposals, entriesPerProposal: entriesPerProposal, elapsedNanos: max(1, nanos), steps: cluster.steps)
    }

    /// An elected three-member cluster for measuring steady-state proposals one at a time (the
    /// Benchmarks package counts allocations per proposal with it).
    public struct SteadyCluster {
        private var cluster: BenchCluster

        /// Builds three cores and elects member 0.
        public init(mode: DurabilityMode = .durable) {
            cluster = BenchCluster(mode: mode)
            cluster.electFirstMember()
        }

        /// Proposes `byteCount` bytes on the leader and delivers every message until all three agree.
        public mutating func proposeAndCommit(byteCount: Int64) {
            cluster.step(0, .propose(byteCount: byteCount))
            cluster.pump()
        }

        /// The leader's commit position.
        public var commitPosition: LogPosition { cluster.cores[0].commitPosition }
    }

    /// Three cores and a FIFO of messages; storage "completes" each write at once.
    private struct BenchCluster {
        var cores: [RaftCore] = []
        var outputs: [RaftOutput] = []
        var messages: [Envelope] = []
        var head = 0
        var persisted: [(LogPosition, Term)?] = [nil, nil, nil]
        var steps = 0

        init(mode: DurabilityMode) {
            let ids = [MemberID(0), MemberID(1), MemberID(2)]
            for index in 0..<3 {
                let configuration = RaftConfiguration(selfID: ids[index], members: ids, durability: mode)
                cores.append(RaftCore(
                    configuration: configuration, hardState: RaftHardState(votingBootID: 1), termIndex: TermIndex(),
                    persistedPosition: .zero, bootID: 1, random: SeededRandom(seed: UInt64(index + 1)), nowNanos: 0))
                outputs.append(RaftOutput(capacity: 64))
            }
            messages.reserveCapacity(4096)
        }

        mutating func electFirstMember() {
            step(0, .campaign)
            pump()
            precondition(cores[0].role == .leader, "member 0 wins the first election")
        }

        mutating func step(_ member: Int, _ input: RaftInput) {
            steps += 1
            outputs[member].removeAll()
            cores[member].step(input, into: &outputs[member])
            for action in outputs[member].actions {
                switch action {
                case .append(_, let end, let term, _): persisted[member] = (end, term)
                case .send(let to, let message): messages.append(Envelope(to: to.rawValue, from: Int32(member), message: message))
                default: break
                }
            }
        }

        /// Delivers every message and persistence report until the cluster is quiet.
        mutating func pump() {
            while true {
                var progressed = false
                for member in 0..<3 {
                    if let (end, term) = persisted[member] {
                        persisted[member] = nil
                        step(member, .persisted(upTo: end, term: term))
                        progressed = true
                    }
                }
                while head < messages.count {
                    let envelope = messages[head]
                    head += 1
                    step(Int(envelope.to), .message(from: MemberID(envelope.from), envelope.message))
                    progressed = true
                }
                if head == messages.count {
                    messages.removeAll(keepingCapacity: true)
                    head = 0
                }
                if !progressed { return }
            }
        }
    }
}
