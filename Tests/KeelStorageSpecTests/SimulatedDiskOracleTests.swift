import KeelCore
import KeelSimulation
import Testing

/// Random operation sequences checked against a naive model: each file as two plain byte arrays,
/// what reads see (`cache`) and what the last datasync left (`stable`). After a power loss every
/// sector must be the model's stable or cached sector, and with the extreme fault models exactly one of them.
@Suite struct SimulatedDiskOracleTests {
    static let sector = 512
    static let fileNames = ["a", "b", "c"]

    struct ModelFile {
        var cache: [UInt8] = []
        var stable: [UInt8] = []
    }

    /// What a random sequence of operations did, for the model and the disk alike.
    final class Run {
        var random: SeededRandom
        let disk: SimulatedDisk
        var storage: SimulatedStorage
        var files: [FileID] = []
        var model = Array(repeating: ModelFile(), count: SimulatedDiskOracleTests.fileNames.count)
        var mappings: [Int: UnsafeMutableRawBufferPointer] = [:]

        init(seed: UInt64, faults: SimulatedFaultModel) throws {
            random = SeededRandom(seed: seed &+ 1000)
            disk = SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(
                fileCapacityBytes: 1 << 20, sectorSizeBytes: SimulatedDiskOracleTests.sector, faults: faults))
            storage = SimulatedStorage(disk: disk)
            try openAll(create: true)
            try storage.syncDirectory()
        }

        func openAll(create: Bool) throws {
            files = try SimulatedDiskOracleTests.fileNames.map { try storage.openFile($0, create: create) }
        }

        func number(_ range: ClosedRange<Int>) -> Int { Int(random.integer(in: Int64(range.lowerBound)...Int64(range.upperBound))) }

        func step() throws {
            let index = number(0...(files.count - 1))
            let file = files[index]
            switch number(0...9) {
            case 0...2:
                let offset = number(0...200_000), count = number(1...3000)
                let bytes = (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                try storage.write(file, at: Int64(offset), bytes: bytes)
                if model[index].cache.count < offset + count { model[index].cache += [UInt8](repeating: 0, count: offset + count - model[index].cache.count) }
                model[index].cache.replaceSubrange(offset..<offset + count, with: bytes)
            case 3:
                let length = number(0...250_000)
                try storage.preallocate(file, bytes: Int64(length))
                if model[index].cache.count < length { model[index].cache += [UInt8](repeating: 0, count: length - model[index].cache.count) }
            case 4:
                let offset = number(0...200_000), count = number(0...70_000)
                try storage.zeroRange(file, at: Int64(offset), bytes: Int64(count))
                let end = min(offset + count, model[index].cache.count)
                if offset < end { model[index].cache.replaceSubrange(offset..<end, with: [UInt8](repeating: 0, count: end - offset)) }
            case 5, 6:
                try storeThroughMapping(index)
            case 7:
                try storage.datasync(file)
                model[index].stable = model[index].cache
            case 8:
                if let mapping = mappings.removeValue(forKey: index) { storage.unmap(UnsafeRawBufferPointer(mapping)) }
            default:
                let actual = try storage.read(file, at: 0, count: model[index].cache.count + 10)
                #expect(actual == model[index].cache, "reads see the page cache")
            }
        }

        private func storeThroughMapping(_ index: Int) throws {
            let length = model[index].cache.count
            guard length > 0 else { return }
            if mappings[index] == nil || mappings[index]!.count != length {
                if let old = mappings.removeValue(forKey: index) { storage.unmap(UnsafeRawBufferPointer(old)) }
                mappings[index] = try storage.mapForWriting(files[index], bytes: length)
            }
            for _ in 0..<number(1...20) {
                let offset = number(0...(length - 1))
                let value = UInt8(truncatingIfNeeded: random.next())
                mappings[index]![offset] = value
                model[index].cache[offset] = value
            }
        }

        /// A process crash: the page cache stays; the next process reopens the files.
        func crashAndRestart() throws {
            disk.crashProcess()
            mappings.removeAll()
            storage = SimulatedStorage(disk: disk)
            try openAll(create: false)
        }
    }

    static func run(seed: UInt64, faults: SimulatedFaultModel) throws -> Run {
        let run = try Run(seed: seed, faults: faults)
        for step in 0..<120 {
            try run.step()
            if step == 60 { try run.crashAndRestart() }
        }
        run.disk.powerLoss()
        return run
    }

    @Test(arguments: 0..<12)
    func losingEveryUnsyncedByteLeavesExactlyTheSyncedState(seed: Int) throws {
        let run = try Self.run(seed: UInt64(seed), faults: .loseAllUnsynced)
        for (index, name) in Self.fileNames.enumerated() {
            #expect(run.disk.contents(ofFile: name) == run.model[index].stable, "seed \(seed) file \(name)")
        }
    }

    @Test(arguments: 0..<12)
    func keepingEveryUnsyncedByteLeavesExactlyThePageCache(seed: Int) throws {
        let run = try Self.run(seed: UInt64(seed), faults: .keepAllUnsynced)
        for (index, name) in Self.fileNames.enumerated() {
            #expect(run.disk.contents(ofFile: name) == run.model[index].cache, "seed \(seed) file \(name)")
        }
    }

    @Test(arguments: 0..<12)
    func everySectorAfterAPowerLossIsTheSyncedOrTheCachedOne(seed: Int) throws {
        var faults = SimulatedFaultModel.adversarial
        faults.tornSectorChance = 0
        let run = try Self.run(seed: UInt64(seed), faults: faults)
        for (index, name) in Self.fileNames.enumerated() {
            let actual = try #require(run.disk.contents(ofFile: name))
            let model = run.model[index]
            #expect(actual.count == model.stable.count || actual.count == model.cache.count, "seed \(seed) file \(name): length")
            var start = 0
            while start < actual.count {
                let end = min(start + Self.sector, actual.count)
                let got = Array(actual[start..<end])
                #expect(got == Self.slice(model.stable, start, end) || got == Self.slice(model.cache, start, end),
                        "seed \(seed) file \(name): sector at \(start)")
                start = end
            }
        }
    }

    /// Bytes `start..<end` of `bytes`, zero beyond its end.
    static func slice(_ bytes: [UInt8], _ start: Int, _ end: Int) -> [UInt8] {
        (start..<end).map { $0 < bytes.count ? bytes[$0] : 0 }
    }
}
