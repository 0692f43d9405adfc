import KeelCore
@testable import KeelLog
import KeelSimulation
import Testing

/// Where the bytes of a position live in the segment files (the layout of LogFormat.swift).
func fileLocation(of position: LogPosition, segmentBytes: Int64 = 64 << 10) -> (name: String, offset: Int64) {
    let start = position.rawValue - position.rawValue % segmentBytes
    return (LogFormat.segmentFileName(start: LogPosition(start)), Int64(LogFormat.segmentHeaderRegionBytes) + position.rawValue - start)
}

/// How a test damages the log between two runs.
enum Damage: String, CaseIterable, CustomStringConvertible, Sendable {
    /// The second half of the last batch reads as zeros (its pages never reached the disk).
    case zeroedTail
    /// Half of a frame header in the last batch is garbage (a torn sector).
    case tornHeader
    /// One payload bit flipped in the last batch.
    case bitFlipInTail
    /// One payload bit flipped in an early batch, below what later batches record as durable.
    case bitFlipInMiddle
    var description: String { rawValue }
}

@Suite struct LogRecoveryTests {
    struct DamageScenario: LogScenario {
        let damage: Damage
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let configuration = testConfiguration()
            var batchEnds: [LogPosition] = [.zero]
            var frames: [LogPosition] = []
            do {
                let log = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
                for batch in 0..<8 {
                    let end = try log.appendTestEntries(Int64(batch * 40)..<Int64(batch * 40 + 40), term: Term(1))
                    #expect(try log.waitUntilDurable(end))
                    batchEnds.append(end)
                }
                log.reader.forEachFrame(from: .zero, limit: log.appendedPosition) { frames.append($0.position); return true }
            }
            place.restartProcess()
            #expect(frames.count == 320)
            let lastBatchFrames = Array(frames[280...])
            let storage = try makeStorage()
            var expectedEnd: LogPosition?
            switch damage {
            case .zeroedTail:
                let from = lastBatchFrames[20]
                let location = fileLocation(of: from.advanced(by: 8))
                try overwrite(storage, file: location.name, at: location.offset, with: [UInt8](repeating: 0, count: 4000))
                expectedEnd = from
            case .tornHeader:
                let location = fileLocation(of: lastBatchFrames[5].advanced(by: 32))
                try overwrite(storage, file: location.name, at: location.offset, with: [UInt8](repeating: 0xA5, count: 32))
                expectedEnd = lastBatchFrames[5]
            case .bitFlipInTail, .bitFlipInMiddle:
                let target = damage == .bitFlipInTail ? lastBatchFrames[33] : frames[50]
                let location = fileLocation(of: target.advanced(by: 20))  // the term field
                var byte = try storage.read(try storage.openFile(location.name, create: false), at: location.offset, count: 1)
                byte[0] ^= 0x04
                try overwrite(storage, file: location.name, at: location.offset, with: byte)
                expectedEnd = damage == .bitFlipInTail ? target : nil
            }
            place.restartProcess()
            if let expectedEnd {
                let log = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
                #expect(log.recoveryReport.endPosition == expectedEnd)
                let cut = try #require(log.recoveryReport.cutTail)
                #expect(cut.position == expectedEnd && cut.bytesZeroed > 0)
                #expect(log.recoveryReport.highestRecordedDurablePosition == batchEnds[7])
                let survivors = frames.firstIndex(of: expectedEnd)!
                #expect(log.readTestEntries().map(\.index) == (0..<Int64(survivors)).map { $0 })
                // The cut is durable and the log carries on from it.
                let end = try log.appendTestEntries(500..<510, term: Term(2))
                #expect(try log.waitUntilDurable(end))
            } else {
                let location = fileLocation(of: frames[50])
                #expect {
                    _ = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
                } throws: { error in
                    guard case LogError.corruption(let file, let position, _) = error else { return false }
                    return file == location.name && position == frames[50]
                }
                return
            }
            place.restartProcess()
            let again = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
            #expect(again.recoveryReport.cutTail == nil)
            #expect(again.readTestEntries().suffix(10).map(\.index) == Array(500..<510))
        }
    }

    @Test(arguments: StorageKind.allCases, Damage.allCases)
    func recoveryTellsTornTailFromCorruption(kind: StorageKind, damage: Damage) throws {
        try LogPlace(kind).run(DamageScenario(damage: damage))
    }

    struct ForeignAndFutureSegments: LogScenario {
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            do {
                let log = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration())
                try log.appendTestEntries(0..<10, term: Term(1))
            }
            place.restartProcess()
            var other = testConfiguration()
            other.clusterID = 77
            #expect(throws: LogError.foreignCluster(file: "log-0000000000000000.seg", clusterID: 0xC1A5_7E12, expected: 77)) {
                _ = try ReplicatedLog(storage: try makeStorage(), configuration: other)
            }
            place.restartProcess()
            var header = [UInt8](repeating: 0, count: 64)
            header.withUnsafeMutableBytes {
                SegmentHeader(formatVersion: 7, clusterID: 0xC1A5_7E12, startPosition: .zero, segmentLengthBytes: 64 << 10).encode(into: $0)
            }
            try overwrite(try makeStorage(), file: "log-0000000000000000.seg", at: 0, with: header)
            place.restartProcess()
            #expect(throws: LogError.unsupportedVersion(file: "log-0000000000000000.seg", version: 7, supported: 1)) {
                _ = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration())
            }
            #expect(LogError.unsupportedVersion(file: "log-0000000000000000.seg", version: 7, supported: 1).description
                .contains("log-0000000000000000.seg has log format version 7; this build reads only version 1"))
        }
    }

    @Test(arguments: StorageKind.allCases)
    func foreignClusterAndUnknownVersionAreRefused(kind: StorageKind) throws {
        try LogPlace(kind).run(ForeignAndFutureSegments())
    }

    struct HardStateSlots: LogScenario {
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let boot: UInt128 = (UInt128(0x0123_4567_89AB_CDEF) << 64) | 0xFEDC_BA98_7654_3210
            do {
                let store = try HardStateStore(storage: try makeStorage())
                #expect(store.current == nil)
                try store.save(HardState(currentTerm: Term(3), votedFor: MemberID(1), clusterID: 9, bootID: boot))
                try store.save(HardState(currentTerm: Term(4), votedFor: nil, clusterID: 9, bootID: boot))
            }
            place.restartProcess()
            do {
                let store = try HardStateStore(storage: try makeStorage())
                #expect(store.current == HardState(currentTerm: Term(4), votedFor: nil, clusterID: 9, bootID: boot))
            }
            // The newest write (sequence 2) went to slot 0; tear it: the previous state comes back.
            try overwrite(try makeStorage(), file: "hard-state", at: 30, with: [0xFF, 0xFF])
            place.restartProcess()
            do {
                let store = try HardStateStore(storage: try makeStorage())
                #expect(store.current == HardState(currentTerm: Term(3), votedFor: MemberID(1), clusterID: 9, bootID: boot))
                try store.save(HardState(currentTerm: Term(5), votedFor: MemberID(2), clusterID: 9, bootID: boot))
            }
            place.restartProcess()
            #expect(try HardStateStore(storage: try makeStorage()).current?.currentTerm == Term(5))
            // Both slots damaged cannot come from one torn write: refuse.
            try overwrite(try makeStorage(), file: "hard-state", at: 20, with: [1])
            try overwrite(try makeStorage(), file: "hard-state", at: 4096 + 20, with: [1])
            place.restartProcess()
            #expect(throws: LogError.self) { _ = try HardStateStore(storage: try makeStorage()) }
        }
    }

    @Test(arguments: StorageKind.allCases)
    func hardStateSurvivesATornSlot(kind: StorageKind) throws {
        try LogPlace(kind).run(HardStateSlots())
    }

    struct LogStartMoves: LogScenario {
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            var cutAt = LogPosition.zero
            do {
                let log = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration())
                var ends: [LogPosition] = []
                for batch in 0..<20 { ends.append(try log.appendTestEntries(Int64(batch * 20)..<Int64(batch * 20 + 20), term: Term(batch < 10 ? 1 : 2))) }
                cutAt = ends[14]
                try log.moveStart(to: cutAt)
                #expect(log.startPosition == cutAt && log.term(before: cutAt) == Term(2))
                #expect(log.readTestEntries().map(\.index) == Array(300..<400))
                #expect(try makeStorage().listFiles().filter { $0.hasSuffix(".seg") }.first == fileLocation(of: cutAt).name)
            }
            place.restartProcess()
            let log = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration())
            #expect(log.startPosition == cutAt && log.term(before: cutAt) == Term(2))
            #expect(log.readTestEntries().map(\.index) == Array(300..<400))
            try log.reset(to: LogPosition(10 << 20), term: Term(6))
            let end = try log.appendTestEntries(900..<905, term: Term(6))
            #expect(try log.waitUntilDurable(end))
            place.restartProcess()
            let reset = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration())
            #expect(reset.startPosition == LogPosition(10 << 20) && reset.term(before: reset.startPosition) == Term(6))
            #expect(reset.readTestEntries().map(\.index) == Array(900..<905))
        }
    }

    @Test(arguments: StorageKind.allCases)
    func logStartMovesAndResets(kind: StorageKind) throws {
        try LogPlace(kind).run(LogStartMoves())
    }
}

@Suite struct LogFullDiskTests {
    /// A disk with room for three segments: the fourth cannot be created. The append that needs it
    /// fails with a clear ENOSPC error, nothing committed is touched, and the log reopens intact.
    @Test func fullDiskIsAClearErrorThatKeepsCommittedData() throws {
        let place = LogPlace(.simulated, seed: 5, capacityBytes: 3 * (64 << 10 + 4096) + 3 * 8192)
        let configuration = testConfiguration()
        var committed: [Int64] = []
        var failure: LogError?
        do {
            let log = try ReplicatedLog(storage: SimulatedStorage(disk: place.disk!), configuration: configuration)
            var index: Int64 = 0
            while failure == nil && index < 5000 {
                do {
                    try log.appendTestEntries(index..<index + 10, term: Term(1))
                    committed += Array(index..<index + 10)
                } catch let error as LogError {
                    failure = error
                }
                index += 10
            }
            #expect(try log.waitUntilDurable(log.appendedPosition))
            #expect(log.readTestEntries().map(\.index) == committed)
        }
        guard case .storage(let ioError)? = failure else {
            Issue.record("expected a storage error, got \(String(describing: failure))")
            return
        }
        #expect(ioError.isNoSpace)
        #expect(failure!.description.contains("no space left on device"))
        #expect(committed.count > 100)
        place.restartProcess()
        let reopened = try ReplicatedLog(storage: SimulatedStorage(disk: place.disk!), configuration: configuration)
        #expect(reopened.readTestEntries().map(\.index) == committed)
    }
}
