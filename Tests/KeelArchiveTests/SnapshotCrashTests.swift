import KeelArchive
import KeelCore
import KeelSimulation
import Testing

/// Crashes and power losses at every kind of point while a snapshot is written, on seeded simulated
/// disks that lose and tear unsynced sectors and directory changes: the archive never loads a
/// half-written snapshot, and the previous one is used unless the new one was complete.
@Suite struct SnapshotCrashTests {
    static let configuration = ArchiveConfiguration(chunkPayloadBytes: 4096)

    enum Outcome { case previous, new }

    /// One seed: snapshot A complete, then snapshot B written with a cut before a random operation.
    static func runSeed(_ seed: UInt64, powerLoss: Bool) throws -> Outcome {
        let disk = SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(fileCapacityBytes: 8 << 20, faults: .adversarial))
        var random = SeededRandom(seed: seed ^ 0x5EED)
        let previous = SnapshotStates.make(seed: seed, serviceBytes: Int(random.integer(in: 1...40_000)))
        let next = SnapshotStates.make(seed: seed + 1, serviceBytes: Int(random.integer(in: 1...40_000)))
        do {
            let archive = try SnapshotArchive(storage: SimulatedStorage(disk: disk, directory: "archive"), configuration: configuration)
            try takeSnapshot(archive, testHeader(position: 1000), previous, seed: seed)
        }
        // An uninterrupted write of B takes about (chunks + 13) operations: cut before any of them, or
        // a little after the end (then the power goes once the snapshot is complete).
        let storage = CrashingStorage(SimulatedStorage(disk: disk, directory: "archive"), cutBeforeOperation: nil, powerLoss: powerLoss)
        let archive = try SnapshotArchive(storage: storage, configuration: configuration)
        let started = storage.operationCount
        storage.cutBeforeOperation = started + Int(random.integer(in: 1...Int64(next.service.count / 4096 + 16)))
        var finished = false
        do {
            try takeSnapshot(archive, testHeader(position: 2000), next, seed: seed)
            finished = true
        } catch {
            #expect(storage.didCut, "seed \(seed): the write failed without a cut: \(error)")
        }
        if !storage.didCut {
            // The cut came after the snapshot was complete and durable.
            if powerLoss { disk.powerLoss() } else { disk.crashProcess() }
        }

        let restarted = try SnapshotArchive(storage: SimulatedStorage(disk: disk, directory: "archive"), configuration: configuration)
        let names = disk.fileNames(in: "archive")
        #expect(!names.contains { $0.hasSuffix(".tmp") }, "seed \(seed): a temporary file survived opening: \(names)")
        #expect(Set(names) == Set(["catalog.0", "catalog.1"] + restarted.snapshots().map(\.fileName)),
                "seed \(seed): files \(names) disagree with the catalog \(restarted.snapshots())")
        let loaded = try #require(try loadNewest(restarted), "seed \(seed): no snapshot loads after the cut")
        #expect(loaded.rejected.isEmpty, "seed \(seed): the catalog listed a broken snapshot: \(loaded.rejected)")
        if finished {
            #expect(loaded.entry.position == LogPosition(2000), "seed \(seed): a finished snapshot was lost")
        }
        switch loaded.entry.position {
        case LogPosition(1000):
            #expect(loaded.states == previous, "seed \(seed): the previous snapshot's bytes changed")
            return .previous
        default:
            #expect(loaded.states == next, "seed \(seed): the new snapshot loaded with different bytes")
            return .new
        }
    }

    @Test func powerLossAtRandomPointsNeverLoadsAHalfWrittenSnapshot() throws {
        var outcomes: [Outcome: Int] = [:]
        for seed in UInt64(1)...150 { outcomes[try Self.runSeed(seed, powerLoss: true), default: 0] += 1 }
        #expect(outcomes[.previous, default: 0] > 20 && outcomes[.new, default: 0] > 5, "both outcomes are exercised: \(outcomes)")
    }

    @Test func processCrashAtRandomPointsNeverLoadsAHalfWrittenSnapshot() throws {
        var outcomes: [Outcome: Int] = [:]
        for seed in UInt64(1001)...1100 { outcomes[try Self.runSeed(seed, powerLoss: false), default: 0] += 1 }
        #expect(outcomes[.previous, default: 0] > 20 && outcomes[.new, default: 0] > 5, "both outcomes are exercised: \(outcomes)")
    }

    /// Retention cut short by a power loss before any of its operations (deletes, directory fsync,
    /// catalog write), and the reopening after it cut short too: the kept snapshots always remain,
    /// every listed snapshot verifies, and the directory agrees with the catalog.
    @Test func removalAndReopeningInterruptedAtEveryPointKeepTheNewest() throws {
        for cut in 1...12 {
            for seed in UInt64(1)...6 {
                let disk = SimulatedDisk(seed: seed * 100 + UInt64(cut), configuration: SimulatedDiskConfiguration(fileCapacityBytes: 8 << 20, faults: .adversarial))
                var entries: [SnapshotEntry] = []
                do {
                    let archive = try SnapshotArchive(storage: SimulatedStorage(disk: disk, directory: "archive"), configuration: Self.configuration)
                    for index in 0..<4 {
                        entries.append(try takeSnapshot(archive, testHeader(position: Int64(100 * (index + 1))), SnapshotStates.make(seed: UInt64(index), serviceBytes: 6000)))
                    }
                }
                let storage = CrashingStorage(SimulatedStorage(disk: disk, directory: "archive"), cutBeforeOperation: nil, powerLoss: true)
                let archive = try SnapshotArchive(storage: storage, configuration: Self.configuration)
                storage.cutBeforeOperation = storage.operationCount + cut
                _ = try? archive.removeSnapshots(keepingNewest: 1)
                if !storage.didCut { disk.powerLoss() }
                // The reopening is interrupted as well, at a seed-chosen point, then done in full.
                let interrupted = CrashingStorage(SimulatedStorage(disk: disk, directory: "archive"), cutBeforeOperation: Int(seed), powerLoss: true)
                _ = try? SnapshotArchive(storage: interrupted, configuration: Self.configuration)
                if !interrupted.didCut { disk.powerLoss() }

                let reopened = try SnapshotArchive(storage: SimulatedStorage(disk: disk, directory: "archive"), configuration: Self.configuration)
                let listed = reopened.snapshots()
                #expect(listed.last == entries.last, "cut \(cut), seed \(seed): the newest snapshot was lost: \(listed)")
                #expect(listed.allSatisfy { entries.contains($0) }, "cut \(cut), seed \(seed): \(listed)")
                #expect(listed.allSatisfy { reopened.verify($0) == nil }, "cut \(cut), seed \(seed): a listed snapshot fails verification")
                #expect(Set(disk.fileNames(in: "archive")) == Set(["catalog.0", "catalog.1"] + listed.map(\.fileName)),
                        "cut \(cut), seed \(seed): files \(disk.fileNames(in: "archive")) against \(listed)")
            }
        }
    }

    @Test func aFullDiskAbandonsTheSnapshotAndKeepsThePreviousOne() throws {
        let disk = SimulatedDisk(seed: 7, configuration: SimulatedDiskConfiguration(capacityBytes: 200_000, fileCapacityBytes: 8 << 20, faults: .loseAllUnsynced))
        let archive = try SnapshotArchive(storage: SimulatedStorage(disk: disk, directory: "archive"), configuration: Self.configuration)
        let previous = SnapshotStates.make(seed: 1, serviceBytes: 50_000)
        try takeSnapshot(archive, testHeader(position: 64), previous)
        let error = #expect(throws: ArchiveError.self) {
            try takeSnapshot(archive, testHeader(position: 128), SnapshotStates.make(seed: 2, serviceBytes: 300_000))
        }
        guard case .storage(let ioError) = error else { Issue.record("expected a storage error, got \(String(describing: error))"); return }
        #expect(ioError.isNoSpace)
        #expect(disk.fileNames(in: "archive") == ["catalog.0", "catalog.1", archive.snapshots()[0].fileName], "the abandoned file is removed")
        #expect(try loadNewest(archive)?.states == previous)
        // Space freed: the next snapshot goes through.
        try takeSnapshot(archive, testHeader(position: 192), SnapshotStates.make(seed: 3, serviceBytes: 50_000))
        #expect(archive.snapshots().count == 2)
    }

    @Test func anInjectedSyncFailureAbandonsTheSnapshot() throws {
        let disk = SimulatedDisk(seed: 8, configuration: SimulatedDiskConfiguration(fileCapacityBytes: 8 << 20, faults: .loseAllUnsynced))
        let archive = try SnapshotArchive(storage: SimulatedStorage(disk: disk, directory: "archive"), configuration: Self.configuration)
        let writing = try archive.beginSnapshot(testHeader(position: 64))
        try writing.beginSection(.serviceState)
        try patternBytes(count: 10_000, seed: 1).withUnsafeBytes { try writing.append($0) }
        disk.failNextOperations(1, errno: Errno.io, operations: [.datasync])
        #expect(throws: ArchiveError.self) { try writing.finish() }
        #expect(archive.snapshots().isEmpty)
        #expect(disk.fileNames(in: "archive") == ["catalog.0", "catalog.1"])
    }
}
