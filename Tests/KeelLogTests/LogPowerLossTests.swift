import KeelCore
import KeelLog
import KeelSimulation
import Testing

private let modesAndMethods: [(DurabilityMode, LogAppendMethod)] = DurabilityMode.allCases.flatMap { mode in
    LogAppendMethod.allCases.map { (mode, $0) }
}

/// Many seeds of: append batches while syncs complete in a seeded order, then a power loss or a
/// process crash at a random point, then recovery — three times over per seed. Checks each mode's
/// promise (DESIGN.md decision 7) at the log level:
/// - a power loss loses nothing that was durable when it struck (in `durable` mode that is all
///   that was acknowledged; in `replicated` mode only what was never synced may be lost);
/// - a process crash loses nothing that was appended (committed);
/// - what survives is always an exact prefix of what was appended: no hole, no garbage, no reorder.
@Suite struct LogPowerLossTests {
    static let seedsPerCase: UInt64 = 50

    @Test(arguments: modesAndMethods)
    func nothingDurableIsLostAtAPowerLoss(mode: DurabilityMode, method: LogAppendMethod) throws {
        var recoveries = 0, cuts = 0, losses = 0
        for seed in 1...Self.seedsPerCase {
            let simulationSeed = seed &* 7919 &+ UInt64(mode == .durable ? 0 : 1_000_000) &+ UInt64(method == .pwrite ? 0 : 500_000)
            let outcome: Outcome
            do { outcome = try runSeed(simulationSeed, mode: mode, method: method) } catch {
                Issue.record("seed \(simulationSeed): \(error)")
                continue
            }
            recoveries += outcome.recoveries
            cuts += outcome.cuts
            losses += outcome.lostEntries > 0 ? 1 : 0
        }
        // The fault model must actually have cut torn tails and lost unsynced entries, or the test proves nothing.
        #expect(recoveries == Int(Self.seedsPerCase) * 3)
        #expect(cuts > 0, "no torn tail was ever cut")
        #expect(losses > 0, "no unsynced entry was ever lost")
    }

    struct Outcome { var recoveries = 0, cuts = 0, lostEntries = 0 }

    func runSeed(_ seed: UInt64, mode: DurabilityMode, method: LogAppendMethod) throws -> Outcome {
        let disk = SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(fileCapacityBytes: 1 << 20, faults: .adversarial))
        var random = SeededRandom(seed: seed ^ 0xA5A5)
        let configuration = testConfiguration(durability: mode, method: method)
        var appended: [Int64] = []           // entry index -> end position, for every entry committed
        var outcome = Outcome()
        var lastGuarantee = 0               // entries the last fault may not take away
        for cycle in 0..<3 {
            let log = try ReplicatedLog(storage: SimulatedStorage(disk: disk), configuration: configuration)
            outcome.recoveries += 1
            if log.recoveryReport.cutTail != nil { outcome.cuts += 1 }
            let survivors = log.readTestEntries().map(\.index)
            let expectedCount = survivors.count
            #expect(survivors == (0..<Int64(expectedCount)).map { $0 }, "seed \(seed): recovered entries are not a prefix")
            if cycle > 0 {
                let guaranteed = lastGuarantee
                #expect(expectedCount >= guaranteed, "seed \(seed) cycle \(cycle): \(guaranteed) entries were promised, \(expectedCount) survived")
                outcome.lostEntries += appended.count - expectedCount
            }
            // (The end may lie past the last entry when a padding frame survived without the entries after it.)
            #expect(log.appendedPosition.rawValue >= (expectedCount == 0 ? 0 : appended[expectedCount - 1]), "seed \(seed): end position")
            appended.removeLast(appended.count - expectedCount)
            try appendRandomly(log, term: Term(Int64(cycle + 1)), random: &random, appended: &appended)
            let powerLoss = random.chance(0.7)
            let durableCount = appended.firstIndex { $0 > log.durablePosition.rawValue } ?? appended.count
            lastGuarantee = powerLoss ? durableCount : appended.count
            if mode == .durable { #expect(log.acknowledgedPosition == log.durablePosition) }
            if powerLoss { disk.powerLoss() } else { disk.crashProcess() }
        }
        return outcome
    }

    func appendRandomly(_ log: ReplicatedLog<SimulatedStorage>, term: Term, random: inout SeededRandom, appended: inout [Int64]) throws {
        for _ in 0..<random.integer(in: 3...25) {
            let count = random.integer(in: 1...20)
            let first = Int64(appended.count)
            let arena = PayloadArena()
            for index in first..<first + count {
                let raw = arena.keep(makePayload(index))
                try log.append(term: term, LogEntryHeader(type: .sessionMessage, sessionID: 7, correlationID: index, timestamp: ClusterTime(rawValue: index)), payload: raw)
                appended.append(-1)
            }
            let end = try withExtendedLifetime(arena) { try log.commitBatch() }
            // Every entry's end is only known by reading back; the batch end is enough for the last one.
            var position = LogPosition(appended.count - Int(count) == 0 ? 0 : appended[appended.count - Int(count) - 1])
            var slot = appended.count - Int(count)
            log.reader.forEachFrame(from: position, limit: end) { frame in
                appended[slot] = frame.endPosition.rawValue
                slot += 1
                position = frame.endPosition
                return true
            }
            #expect(slot == appended.count)
            if random.chance(0.5) { try log.poll() }
            if random.chance(0.2) { try log.storage.waitForCompletions(timeoutNanos: 1_000_000); try log.poll() }
        }
    }
}
