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
