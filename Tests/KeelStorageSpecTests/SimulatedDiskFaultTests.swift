import KeelCore
import KeelSimulation
import Testing

/// What only the simulated disk does: lose, tear, corrupt, fill up and fail, all from a seed.
@Suite struct SimulatedDiskFaultTests {
    static let sector = 512

    /// A disk whose faults are exactly `faults`.
    static func disk(seed: UInt64, faults: SimulatedFaultModel, capacityBytes: Int64 = 1 << 30, fileCapacityBytes: Int = 1 << 20) -> SimulatedDisk {
        SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(
            capacityBytes: capacityBytes, fileCapacityBytes: fileCapacityBytes, sectorSizeBytes: sector, faults: faults))
    }

    /// Creates `name` durably (file, length and directory entry) holding `bytes`.
    static func createSynced(_ storage: SimulatedStorage, _ name: String, _ bytes: [UInt8]) throws {
        let file = try storage.openFile(name, create: true)
        try storage.write(file, at: 0, bytes: bytes)
        try storage.datasync(file)
        try storage.syncDirectory()
        storage.closeFile(file)
    }

    @Test func powerLossKeepsSyncedBytesAndLosesUnsyncedOnes() throws {
        let disk = Self.disk(seed: 1, faults: .loseAllUnsynced)
        let storage = SimulatedStorage(disk: disk)
        let synced = StorageSpec.pattern(count: 3000, seed: 1)
        try Self.createSynced(storage, "log", synced)
        let file = try storage.openFile("log", create: false)
        try storage.write(file, at: 3000, bytes: [UInt8](repeating: 0xCC, count: 2000))
        try storage.write(file, at: 0, bytes: [UInt8](repeating: 0xDD, count: 100))
        #expect(try storage.fileSize(file) == 5000)

        disk.powerLoss()
        let restarted = SimulatedStorage(disk: disk)
        let reopened = try restarted.openFile("log", create: false)
        #expect(try restarted.fileSize(reopened) == 3000, "the unsynced growth is gone")
        #expect(try restarted.read(reopened, at: 0, count: 5000) == synced, "synced bytes are intact, unsynced overwrites undone")
    }

    @Test func powerLossLosesUnsyncedSectorsIndependently() throws {
        let sectors = 8
        var sawLaterSurviveEarlierLost = false
        var sawAllKept = false
        var sawAllLost = false
        for seed in UInt64(0)..<200 {
            var faults = SimulatedFaultModel.loseAllUnsynced
            faults.unsyncedSectorSurvivalChance = 0.5
            let disk = Self.disk(seed: seed, faults: faults)
            let storage = SimulatedStorage(disk: disk)
            try Self.createSynced(storage, "f", [UInt8](repeating: 0x11, count: sectors * Self.sector))
            let file = try storage.openFile("f", create: false)
            try storage.write(file, at: 0, bytes: [UInt8](repeating: 0x22, count: sectors * Self.sector))
            disk.powerLoss()

            let bytes = try #require(disk.contents(ofFile: "f"))
            var survived: [Bool] = []
            for index in 0..<sectors {
                let sector = bytes[index * Self.sector..<(index + 1) * Self.sector]
                let new = sector.allSatisfy { $0 == 0x22 }
                #expect(new || sector.allSatisfy { $0 == 0x11 }, "seed \(seed): sector \(index) is wholly old or wholly new (no tearing configured)")
                survived.append(new)
            }
            if let firstLost = survived.firstIndex(of: false), survived[(firstLost + 1)...].contains(true) {
                sawLaterSurviveEarlierLost = true
            }
            sawAllKept = sawAllKept || survived.allSatisfy { $0 }
            sawAllLost = sawAllLost || survived.allSatisfy { !$0 }
        }
        #expect(sawLaterSurviveEarlierLost, "some seed kept a later sector while losing an earlier one: loss is not only a suffix")
        #expect(sawAllKept && sawAllLost)
    }

    @Test func powerLossCanTearInsideASector() throws {
        var faults = SimulatedFaultModel.loseAllUnsynced
        faults.tornSectorChance = 1
        let disk = Self.disk(seed: 9, faults: faults)
        let storage = SimulatedStorage(disk: disk)
        try Self.createSynced(storage, "f", [UInt8](repeating: 0, count: Self.sector))
        let file = try storage.openFile("f", create: false)
        try storage.write(file, at: 0, bytes: [UInt8](repeating: 0xFF, count: Self.sector))
        disk.powerLoss()
        let bytes = try #require(disk.contents(ofFile: "f"))
        let newPrefix = bytes.prefix { $0 == 0xFF }.count
        #expect(newPrefix > 0 && newPrefix < Self.sector, "a prefix of new bytes, then old ones")
        #expect(bytes[newPrefix...].allSatisfy { $0 == 0 })
    }

    @Test func mappedStoresAreLostAtPowerLossUnlessSynced() throws {
        let disk = Self.disk(seed: 2, faults: .loseAllUnsynced)
        let storage = SimulatedStorage(disk: disk)
        try Self.createSynced(storage, "segment", [UInt8](repeating: 0, count: 8192))
        let file = try storage.openFile("segment", create: false)
        let mapping = try storage.mapForWriting(file, bytes: 8192)
        mapping[10] = 0xA1
        try storage.datasync(file)
        mapping[5000] = 0xB2   // never synced
        #expect(disk.contents(ofFile: "segment")?[5000] == 0xB2, "the store is in the page cache at once")
        #expect(disk.stableContents(ofFile: "segment")?[5000] == 0, "but not stable until a datasync")

        disk.powerLoss()
        let bytes = try #require(disk.contents(ofFile: "segment"))
        #expect(bytes[10] == 0xA1, "a mapped store covered by a datasync survives")
        #expect(bytes[5000] == 0, "a mapped store not covered by a datasync is lost")
    }

    @Test func aDeadProcessUnmappingDoesNotHideTheNextProcessesMappedStores() throws {
        let disk = Self.disk(seed: 13, faults: .loseAllUnsynced)
        let first = SimulatedStorage(disk: disk)
        try Self.createSynced(first, "segment", [UInt8](repeating: 0, count: 4096))
        let oldMapping = try first.mapForWriting(try first.openFile("segment", create: false), bytes: 4096)
        disk.crashProcess()

        let second = SimulatedStorage(disk: disk)
        let file = try second.openFile("segment", create: false)
        let mapping = try second.mapForWriting(file, bytes: 4096)
        first.unmap(UnsafeRawBufferPointer(oldMapping))   // the dead process's objects going away
        mapping[1] = 0x11
        try second.datasync(file)
        mapping[2] = 0x22   // unsynced: must be lost
        disk.powerLoss()
        #expect(disk.contents(ofFile: "segment")?.prefix(3) == [0, 0x11, 0])
    }

    @Test func unsyncedDirectoryChangesAreUndoneAtPowerLoss() throws {
        let disk = Self.disk(seed: 3, faults: .loseAllUnsynced)
        let storage = SimulatedStorage(disk: disk)
        try Self.createSynced(storage, "kept", [1])
        try Self.createSynced(storage, "old", [2])
        // Synced contents, unsynced directory changes.
        let fresh = try storage.openFile("fresh", create: true)
        try storage.write(fresh, at: 0, bytes: [3])
        try storage.datasync(fresh)
        try storage.renameFile("old", to: "new")
        try storage.deleteFile("kept")
        #expect(try storage.listFiles() == ["fresh", "new"])

        disk.powerLoss()
        let restarted = SimulatedStorage(disk: disk)
        #expect(try restarted.listFiles() == ["kept", "old"], "create, rename and delete not followed by syncDirectory are undone")
        #expect(disk.contents(ofFile: "old") == [2])
    }

    @Test func syncedDirectoryChangesSurvivePowerLoss() throws {
        let disk = Self.disk(seed: 4, faults: .loseAllUnsynced)
        let storage = SimulatedStorage(disk: disk)
        try Self.createSynced(storage, "temp", [7, 7])
        try storage.renameFile("temp", to: "snapshot")
        try storage.syncDirectory()
        disk.powerLoss()
        #expect(try SimulatedStorage(disk: disk).listFiles() == ["snapshot"])
        #expect(disk.contents(ofFile: "snapshot") == [7, 7])
    }

    @Test func submittedDirectorySyncMakesChangesDurableOnlyOnceCompleted() throws {
        let disk = Self.disk(seed: 5, faults: .loseAllUnsynced)
        let storage = SimulatedStorage(disk: disk)
        try Self.createSynced(storage, "temp", [7, 7])
        try storage.renameFile("temp", to: "queued")
        try storage.submitSyncDirectory(token: IOToken(3))
        disk.powerLoss()  // the sync was never flushed to the device: the rename is lost
        #expect(try SimulatedStorage(disk: disk).listFiles() == ["temp"])

        let restarted = SimulatedStorage(disk: disk)
        try restarted.renameFile("temp", to: "done")
        try restarted.submitSyncDirectory(token: IOToken(4))
        let completions = try StorageSpec.drain(restarted, expecting: 1)
        #expect(completions == [IOCompletion(token: IOToken(4), operation: .syncDirectory, result: 0)])
        disk.powerLoss()
        #expect(try SimulatedStorage(disk: disk).listFiles() == ["done"])
    }

    @Test func directoryChangesSurviveAsAPrefixInOrder() throws {
        var sawPartial = false
        for seed in UInt64(0)..<50 {
            var faults = SimulatedFaultModel.loseAllUnsynced
            faults.unsyncedDirectoryChangeSurvivalChance = 0.7
            let disk = Self.disk(seed: seed, faults: faults)
            let storage = SimulatedStorage(disk: disk)
            for index in 0..<5 { storage.closeFile(try storage.openFile("f\(index)", create: true)) }
            disk.powerLoss()
            let names = try SimulatedStorage(disk: disk).listFiles()
            #expect(names == (0..<names.count).map { "f\($0)" }, "seed \(seed): \(names) is a prefix of the creations")
            sawPartial = sawPartial || (names.count > 0 && names.count < 5)
        }
        #expect(sawPartial)
    }

    @Test func processCrashKeepsThePageCacheAndKillsTheOldStorage() throws {
        let disk = Self.disk(seed: 5, faults: .adversarial)
        let storage = SimulatedStorage(disk: disk)
        let file = try storage.openFile("log", create: true)
        try storage.write(file, at: 0, bytes: [1, 2, 3, 4])   // never synced, directory never synced
        disk.crashProcess()

        let error = #expect(throws: IOError.self) { try storage.write(file, at: 4, bytes: [5]) }
        #expect(error?.errno == Errno.io, "the crashed process's storage no longer works")
        let restarted = SimulatedStorage(disk: disk)
        #expect(try restarted.listFiles() == ["log"])
        let reopened = try restarted.openFile("log", create: false)
        #expect(try restarted.read(reopened, at: 0, count: 10) == [1, 2, 3, 4], "written bytes survive a process crash")
    }

    @Test func operationsInFlightAtACrashMayOrMayNotHaveHappened() throws {
        var outcomes = Set<Int>()
        for seed in UInt64(0)..<40 {
            let disk = Self.disk(seed: seed, faults: .adversarial)
            let storage = SimulatedStorage(disk: disk)
            let file = try storage.openFile("log", create: true)
            let payload = [UInt8](repeating: 0xEE, count: 4 * Self.sector)
            try payload.withUnsafeBytes { bytes in
                try storage.submitWrite(file, at: 0, bytes, token: IOToken(1), thenDatasync: true)
                try storage.flushSubmissions()
                disk.crashProcess()   // before anything was reaped
            }
            let length = try #require(disk.contents(ofFile: "log")).count
            #expect(length % Self.sector == 0, "a write lands as a prefix of whole sectors")
            outcomes.insert(length)
        }
        #expect(outcomes.contains(0) && outcomes.contains(4 * Self.sector), "some seeds lose the write, others keep all of it: \(outcomes)")
    }

    @Test func fullDiskFailsWithNoSpaceAndKeepsWrittenData() throws {
        let disk = Self.disk(seed: 6, faults: .loseAllUnsynced, capacityBytes: 4096)
        let storage = SimulatedStorage(disk: disk)
        let file = try storage.openFile("log", create: true)
        let data = StorageSpec.pattern(count: 4096, seed: 6)
        try storage.write(file, at: 0, bytes: data)

        let grow = #expect(throws: IOError.self) { try storage.write(file, at: 4096, bytes: [1]) }
        #expect(grow?.operation == .write && grow?.isNoSpace == true)
        let preallocate = #expect(throws: IOError.self) { try storage.preallocate(file, bytes: 8192) }
        #expect(preallocate?.operation == .preallocate && preallocate?.isNoSpace == true)
        try storage.write(file, at: 10, bytes: [0xAB])   // overwriting needs no space
        var expected = data
        expected[10] = 0xAB
        #expect(try storage.read(file, at: 0, count: 8192) == expected, "data written before the disk filled is intact")
        #expect(disk.usedBytes == 4096)

        try [UInt8](repeating: 1, count: 100).withUnsafeBytes { bytes in
            try storage.submitWrite(file, at: 4096, bytes, token: IOToken(3), thenDatasync: true)
            let completions = try StorageSpec.drain(storage, expecting: 2)
            #expect(completions == [IOCompletion(token: IOToken(3), operation: .write, result: -Errno.noSpace),
                                    IOCompletion(token: IOToken(3), operation: .datasync, result: -Errno.canceled)],
                    "an asynchronous write fails in its completion and its linked datasync is cancelled")
        }
        disk.capacityBytes = 1 << 20
        try storage.write(file, at: 4096, bytes: [1])
        #expect(try storage.fileSize(file) == 4097, "space freed, writes grow again")
    }

    @Test func aClosedFileCannotBeUsed() throws {
        let storage = SimulatedStorage(disk: Self.disk(seed: 12, faults: .loseAllUnsynced))
        let file = try storage.openFile("f", create: true)
        try storage.write(file, at: 0, bytes: [1])
        storage.closeFile(file)
        let read = #expect(throws: IOError.self) { try storage.read(file, at: 0, count: 1) }
        #expect(read?.operation == .read && read?.errno == Errno.badFile)
        let sync = #expect(throws: IOError.self) { try storage.submitDatasync(file, token: IOToken(1)) }
        #expect(sync?.operation == .datasync && sync?.errno == Errno.badFile)
        let reopened = try storage.openFile("f", create: false)
        #expect(reopened != file, "a new open gets a new identity")
        #expect(try storage.read(reopened, at: 0, count: 1) == [1])
    }

    @Test func fileCapacityIsALimit() throws {
        let disk = Self.disk(seed: 7, faults: .loseAllUnsynced, fileCapacityBytes: 64 * 1024)
        let storage = SimulatedStorage(disk: disk)
        let file = try storage.openFile("big", create: true)
        try storage.preallocate(file, bytes: 64 * 1024)
        let error = #expect(throws: IOError.self) { try storage.write(file, at: 64 * 1024 - 1, bytes: [1, 2]) }
        #expect(error?.operation == .write && error?.errno == 27, "EFBIG beyond the file's reserved capacity")
    }

    @Test func injectedFailuresHitTheNextOperations() throws {
        let disk = Self.disk(seed: 8, faults: .loseAllUnsynced)
        let storage = SimulatedStorage(disk: disk)
        let file = try storage.openFile("f", create: true)
        disk.failNextOperations(2, errno: Errno.io, operations: [.write])
        for _ in 0..<2 {
            let error = #expect(throws: IOError.self) { try storage.write(file, at: 0, bytes: [1]) }
            #expect(error?.operation == .write && error?.errno == Errno.io)
        }
        try storage.datasync(file)   // not a matching operation
        try storage.write(file, at: 0, bytes: [1])
        #expect(try storage.read(file, at: 0, count: 4) == [1], "failed writes changed nothing; the third succeeded")

        disk.failNextOperations(1, errno: Errno.io, operations: [.datasync])
        try storage.submitDatasync(file, token: IOToken(4))
        #expect(try StorageSpec.drain(storage, expecting: 1) == [IOCompletion(token: IOToken(4), operation: .datasync, result: -Errno.io)])
        #expect(disk.pendingInjectedFailures == 0)
    }

    @Test func bitFlipsAreVisibleAndDurable() throws {
        let disk = Self.disk(seed: 10, faults: .loseAllUnsynced)
        let storage = SimulatedStorage(disk: disk)
        try Self.createSynced(storage, "f", [UInt8](repeating: 0, count: 2048))
        let file = try storage.openFile("f", create: false)
        let mapping = try storage.mapForReading(file, bytes: 2048)
        disk.flipBit(inFile: "f", atOffset: 1000, bit: 3)
        #expect(mapping[1000] == 0b1000, "visible through a mapping")
        #expect(try storage.read(file, at: 1000, count: 1) == [0b1000], "visible to reads")
        storage.unmap(mapping)
        disk.powerLoss()
        #expect(disk.contents(ofFile: "f")?[1000] == 0b1000, "still there after a power loss")
    }

    @Test func randomBitFlipsAppearAtPowerLoss() throws {
        var faults = SimulatedFaultModel.loseAllUnsynced
        faults.bitFlipChancePerSector = 1
        let disk = Self.disk(seed: 11, faults: faults)
        let storage = SimulatedStorage(disk: disk)
        try Self.createSynced(storage, "f", [UInt8](repeating: 0, count: 4 * Self.sector))
        disk.powerLoss()
        let bytes = try #require(disk.contents(ofFile: "f"))
        for index in 0..<4 {
            let ones = bytes[index * Self.sector..<(index + 1) * Self.sector].reduce(0) { $0 + $1.nonzeroBitCount }
            #expect(ones == 1, "sector \(index) has exactly one flipped bit")
        }
    }

    @Test func unlinkedOperationsCompleteOutOfOrderButLinkedDatasyncsNeverBeforeTheirWrite() throws {
        var sawReordering = false
        for seed in UInt64(0)..<30 {
            let disk = Self.disk(seed: seed, faults: .adversarial)
            let storage = SimulatedStorage(disk: disk)
            let file = try storage.openFile("f", create: true)
            let payload = [UInt8](repeating: 1, count: 64)
            let completions = try payload.withUnsafeBytes { bytes in
                for index in 0..<5 {
                    try storage.submitWrite(file, at: Int64(index * 64), bytes, token: IOToken(UInt64(index)), thenDatasync: true)
                }
                try storage.flushSubmissions()
                return try StorageSpec.drain(storage, expecting: 10)
            }
            for index in 0..<5 {
                let mine = completions.filter { $0.token == IOToken(UInt64(index)) }.map(\.operation)
                #expect(mine == [.write, .datasync], "seed \(seed): write before its linked datasync")
            }
            let writeOrder = completions.filter { $0.operation == .write }.map(\.token.rawValue)
            sawReordering = sawReordering || writeOrder != writeOrder.sorted()
        }
        #expect(sawReordering, "independent writes completed out of submission order for some seed")
    }

    /// A scenario exercising every random choice; returns everything observable.
    static func scenario(seed: UInt64) throws -> [[UInt8]] {
        var faults = SimulatedFaultModel.adversarial
        faults.bitFlipChancePerSector = 0.01
        let disk = Self.disk(seed: seed, faults: faults)
        let storage = SimulatedStorage(disk: disk)
        let file = try storage.openFile("log", create: true)
        try storage.preallocate(file, bytes: 16 * 1024)
        try storage.datasync(file)
        try storage.syncDirectory()
        var observed: [[UInt8]] = []
        let payload = StorageSpec.pattern(count: 16 * 1024, seed: 99)
        try payload.withUnsafeBytes { bytes in
            for index in 0..<8 {
                let chunk = UnsafeRawBufferPointer(rebasing: bytes[index * 2048..<(index + 1) * 2048])
                try storage.submitWrite(file, at: Int64(index * 2048), chunk, token: IOToken(UInt64(index)), thenDatasync: index % 3 == 0)
            }
            try storage.flushSubmissions()
            let completions = try StorageSpec.drain(storage, expecting: 11)
            observed.append(completions.map { UInt8(truncatingIfNeeded: $0.token.rawValue) })
        }
        storage.closeFile(try storage.openFile("extra", create: true))
        disk.powerLoss()
        observed.append(try #require(disk.contents(ofFile: "log")))
        observed.append(Array(disk.fileNames().joined().utf8))
        return observed
    }

    @Test func sameSeedGivesTheSameOutcome() throws {
        for seed in UInt64(20)..<25 {
            #expect(try Self.scenario(seed: seed) == Self.scenario(seed: seed), "seed \(seed) replays exactly")
        }
        let outcomes = try (UInt64(20)..<25).map { try Self.scenario(seed: $0) }
        #expect(Set(outcomes.map { $0.description }).count > 1, "different seeds give different outcomes")
    }
}
