import KeelCore
import KeelSimulation
import Testing

/// Snapshot shipping in the whole-node simulation: the leader's log start moves up to its newest
/// snapshot now and then, members are wiped (a new empty disk, same id) and rejoin, and crashes,
/// power losses (inside snapshot writing and installing too) and connection cuts break transfers;
/// members behind the leader's log start are caught up by a shipped snapshot. Every check of the
/// simulation holds (same entries after the newest start, equal state digests, nothing
/// acknowledged lost, exactly-once).
@Suite("Whole-node simulation: snapshot shipping to laggards and wiped members")
struct SnapshotShippingSimulationTests {
    @Test("durable and replicated: seeds with log-start moves and wipes pass every check, and snapshots are installed from a leader",
          arguments: [DurabilityMode.durable, .replicated])
    func shippingUnderFaults(mode: DurabilityMode) {
        var options = WholeNodeSimulationOptions(mode: mode)
        options.snapshots = true
        var installed = 0, wipes = 0, moves = 0
        for seed in UInt64(1)...4 {
            let result = WholeNodeSimulation.run(seed: seed, options: options)
            #expect(result.violation == nil, "\(WholeNodeSimulationTests.report(result, options))")
            installed += result.snapshotsInstalled
            wipes += result.wipes
            moves += result.logStartMoves
        }
        #expect(moves > 0 && wipes > 0, "the seeds exercise log-start moves (\(moves)) and wipes (\(wipes))")
        #expect(installed > 0, "some member was caught up by a shipped snapshot")
    }
}
