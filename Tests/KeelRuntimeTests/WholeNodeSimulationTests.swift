import KeelCore
import KeelSimulation
import Testing

@Suite("Whole-node simulation: three nodes, a client and seeded faults, checked against each durability promise")
struct WholeNodeSimulationTests {
    static func report(_ result: WholeNodeSimulationResult, _ options: WholeNodeSimulationOptions) -> String {
        "seed \(result.seed): \(result.violation ?? "ok")\nreplay: \(WholeNodeSimulation.replayCommand(seed: result.seed, options: options))\n"
            + result.recentEvents.joined(separator: "\n")
    }

    @Test("without faults: every request is acknowledged and applied identically on the three replicas")
    func noFaults() {
        var options = WholeNodeSimulationOptions(mode: .durable, requestCount: 60)
        options.processCrashes = false
        options.powerLosses = false
        options.networkFaults = false
        options.leadershipTransfers = false
        options.suspensions = false
        let result = WholeNodeSimulation.run(seed: 1, options: options)
        #expect(result.violation == nil, "\(Self.report(result, options))")
        #expect(result.acknowledged == 60)
        #expect(result.appliedEntries >= 60)
        #expect(result.faultsInjected == 0)
    }

    @Test("durable mode: crashes, power losses and network faults; nothing acknowledged is lost", arguments: [UInt64(1), 2, 3, 4])
    func durableSeeds(seed: UInt64) {
        let options = WholeNodeSimulationOptions(mode: .durable)
        let result = WholeNodeSimulation.run(seed: seed, options: options)
        #expect(result.violation == nil, "\(Self.report(result, options))")
        #expect(result.faultsInjected > 0)
        #expect(result.acknowledged == options.requestCount)
    }

    @Test("replicated mode: crashes, minority power losses and network faults; nothing acknowledged is lost", arguments: [UInt64(1), 2, 3, 4])
    func replicatedSeeds(seed: UInt64) {
        let options = WholeNodeSimulationOptions(mode: .replicated)
        let result = WholeNodeSimulation.run(seed: seed, options: options)
        #expect(result.violation == nil, "\(Self.report(result, options))")
        #expect(result.faultsInjected > 0)
        #expect(result.stoppedAfterMajorityPowerLoss || result.acknowledged == options.requestCount)
    }
}

@Suite("Whole-node simulation: replicated-mode catch-up after a power loss")
struct WholeNodeCatchUpTests {
    @Test("a member that lost power in replicated mode is caught up by the leader and votes again")
    func powerLostMemberRegainsItsVote() {
        // Seed 3 loses power on a member early; after healing its log matches the leader's.
        let options = WholeNodeSimulationOptions(mode: .replicated)
        let result = WholeNodeSimulation.run(seed: 3, options: options)
        #expect(result.violation == nil, "\(WholeNodeSimulationTests.report(result, options))")
        #expect(result.powerLosses >= 1)
        #expect(result.membersStillCatchingUp.isEmpty, "still catching up: \(result.membersStillCatchingUp)")
    }
}
