import KeelCore
import KeelRaft
import KeelSimulation
import Testing

/// The simulator itself: clean runs find nothing, the same seed replays the same run, and every planted
/// bug is caught within a bounded number of seeds (the checkers are shown to fail).
@Suite struct SimulatorTests {
    @Test(arguments: [(3, DurabilityMode.durable), (3, .replicated), (5, .durable), (5, .replicated)])
    func correctCoreRunsCleanSeeds(members: Int, mode: DurabilityMode) {
        let options = RaftSimulationOptions(memberCount: members, mode: mode, faultSteps: 2_000)
        var elections = 0, committed = 0, faults = 0
        for seed in UInt64(1)...30 {
            let result = RaftSimulation.run(seed: seed, options: options)
            #expect(result.violation == nil, "seed \(seed): \(result.violation ?? "")\n  replay: \(RaftSimulation.replayCommand(seed: seed, options: options))")
            elections += result.elections
            committed += result.committedEntries
            faults += result.faultsInjected
        }
        // The runs did real work: elections, commits and faults happened.
        #expect(elections > 30)
        #expect(committed > 30 * 50)
        #expect(faults > 30 * 5)
    }
}

extension SimulatorTests {
    @Test func sameSeedReplaysTheSameRun() {
        let options = RaftSimulationOptions(memberCount: 5, mode: .replicated, faultSteps: 2_000)
        let first = RaftSimulation.run(seed: 42, options: options)
        let second = RaftSimulation.run(seed: 42, options: options)
        #expect(first.steps == second.steps)
        #expect(first.elections == second.elections)
        #expect(first.committedEntries == second.committedEntries)
        #expect(first.faultsInjected == second.faultsInjected)
        let other = RaftSimulation.run(seed: 43, options: options)
        #expect((other.steps, other.committedEntries) != (first.steps, first.committedEntries))
    }

    /// The checkers must be shown to fail: each planted bug is found within a bounded number of seeds.
    @Test(arguments: [
        (RaftPlantedBug.voteWithoutLogCheck, DurabilityMode.durable, 100),
        (.commitOldTermByCounting, .durable, 200),
        (.ackBeforePersist, .durable, 20),
        (.rebootedMemberVotesAtOnce, .replicated, 150),
    ])
    func plantedBugIsFound(bug: RaftPlantedBug, mode: DurabilityMode, seedBound: Int) {
        let options = RaftSimulationOptions(memberCount: 3, mode: mode, faultSteps: 2_000, plantedBug: bug)
        var found: RaftSimulationResult?
        for seed in 1...UInt64(seedBound) {
            let result = RaftSimulation.run(seed: seed, options: options)
            if result.violation != nil {
                found = result
                break
            }
        }
        #expect(found != nil, "planted bug \(bug.rawValue) not found in \(seedBound) seeds")
        if let found { print("planted bug \(bug.rawValue) found at seed \(found.seed): \(found.violation!)") }
    }
}

extension SimulatorTests {
    @Test func throughputBenchCommitsEveryProposal() {
        let result = RaftThroughputBench.run(proposals: 2_000, entriesPerProposal: 256)
        #expect(result.proposals == 2_000)
        #expect(result.proposalsPerSecond > 0)
        // One proposal: the leader's propose and persist, an append, a persist and two answers per follower.
        #expect(result.steps >= 2_000 * 10)
    }
}
