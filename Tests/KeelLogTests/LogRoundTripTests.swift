import KeelCore
import KeelLog
import Testing

private let storageAndMethod: [(StorageKind, LogAppendMethod)] = StorageKind.allCases.flatMap { kind in
    LogAppendMethod.allCases.map { (kind, $0) }
}

@Suite struct LogRoundTripTests {
    /// Appends over several segment roll-overs in both terms, reads back, reopens, reads again.
    struct RoundTrip: LogScenario {
        let method: LogAppendMethod
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let configuration = testConfiguration(method: method)
            var end = LogPosition.zero
            do {
                let log = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
                #expect(log.recoveryReport.endPosition == .zero && log.recoveryReport.cutTail == nil)
                for batch in 0..<30 {
                    let term = Term(batch < 12 ? 1 : 3)
                    end = try log.appendTestEntries(Int64(batch * 20)..<Int64(batch * 20 + 20), term: term)
                }
                #expect(end.rawValue > 3 * 65_536, "the test must roll over several segments")
                #expect(try log.waitUntilDurable(end))
                let entries = log.readTestEntries()
                #expect(entries.map(\.index) == Array(0..<600))
                #expect(entries.map(\.term) == (0..<600).map { Term($0 < 240 ? 1 : 3) })
                #expect(log.lastTerm == Term(3))
                #expect(log.term(before: .zero) == .zero && log.term(at: .zero) == Term(1))
                let term3Start = try #require(log.startOfTerm(Term(3)))
                #expect(log.term(at: term3Start) == Term(3) && log.term(before: term3Start) == Term(1))
                #expect(log.startOfTerm(Term(2)) == nil)
            }
            place.restartProcess()
            let reopened = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
            #expect(reopened.recoveryReport.endPosition == end)
            #expect(reopened.recoveryReport.cutTail == nil)
            #expect(reopened.recoveryReport.lastTerm == Term(3))
            #expect(reopened.readTestEntries().map(\.index) == Array(0..<600))
            // The term index rebuilt from the frames is the one the appends built.
            #expect(reopened.startOfTerm(Term(3)) != nil && reopened.startOfTerm(Term(1)) == .zero)
        }
    }

    @Test(arguments: storageAndMethod)
    func appendReadAndReopenOverSegmentRollOver(kind: StorageKind, method: LogAppendMethod) throws {
        try LogPlace(kind).run(RoundTrip(method: method))
    }

    struct TruncateThenAppend: LogScenario {
        let method: LogAppendMethod
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let configuration = testConfiguration(method: method)
            let log = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
            var boundaries: [LogPosition] = [.zero]
            for batch in 0..<10 { boundaries.append(try log.appendTestEntries(Int64(batch * 30)..<Int64(batch * 30 + 30), term: Term(1))) }
            // Cut in the middle of the log (several segments back), then append other entries in term 2.
            #expect(throws: LogError.self) { try log.truncate(from: boundaries[4].advanced(by: 32)) }
            try log.truncate(from: boundaries[4])
            #expect(log.appendedPosition == boundaries[4] && log.durablePosition <= boundaries[4])
            #expect(log.readTestEntries().map(\.index) == Array(0..<120))
            #expect(log.startOfTerm(Term(1)) == .zero && log.lastTerm == Term(1))
            let end = try log.appendTestEntries(1000..<1100, term: Term(2))
            #expect(try log.waitUntilDurable(end))
            let expected = Array(0..<120) + Array(1000..<1100)
            #expect(log.readTestEntries().map(\.index) == expected.map(Int64.init))
            #expect(log.startOfTerm(Term(2)) == boundaries[4])
            place.restartProcess()
            let reopened = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
            #expect(reopened.readTestEntries().map(\.index) == expected.map(Int64.init))
            #expect(reopened.recoveryReport.cutTail == nil)
            #expect(reopened.startOfTerm(Term(2)) == boundaries[4])
        }
    }

    @Test(arguments: storageAndMethod)
    func truncateThenAppend(kind: StorageKind, method: LogAppendMethod) throws {
        try LogPlace(kind).run(TruncateThenAppend(method: method))
    }

    /// Frames of 1 KiB fill a 64 KiB segment exactly: no padding, and batches straddle the boundary.
    struct ExactFit: LogScenario {
        let method: LogAppendMethod
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let log = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration(method: method))
            let arena = PayloadArena()
            let payload = arena.keep([UInt8](repeating: 0x5A, count: 1024 - 64))
            var index: Int64 = 0
            for _ in 0..<30 {
                for _ in 0..<7 {
                    try log.append(term: Term(1), LogEntryHeader(type: .sessionMessage, correlationID: index), payload: payload)
                    index += 1
                }
                try withExtendedLifetime(arena) { try log.commitBatch() }
            }
            #expect(log.appendedPosition == LogPosition(210 * 1024))
            var seen: [Int64] = []
            log.reader.forEachFrame(from: .zero, limit: log.appendedPosition) { frame in
                if frame.hasValidCRC && frame.payload.allSatisfy({ $0 == 0x5A }) { seen.append(frame.correlationID) }
                return true
            }
            #expect(seen == Array(0..<210))
            place.restartProcess()
            let reopened = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration(method: method))
            #expect(reopened.appendedPosition == LogPosition(210 * 1024) && reopened.recoveryReport.cutTail == nil)
        }
    }

    @Test(arguments: storageAndMethod)
    func framesFillingASegmentExactlyRollOverWithoutPadding(kind: StorageKind, method: LogAppendMethod) throws {
        try LogPlace(kind).run(ExactFit(method: method))
    }

    /// One batch of 1,500 large frames with unaligned payloads (header, payload and alignment zeros:
    /// three pieces each) fills the gather write's piece list more than four times over; mixed with
    /// small frames that are copied whole. Every frame reads back intact, before and after a reopen.
    struct LargeGatheredBatch: LogScenario {
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let configuration = testConfiguration(method: .pwrite, segmentBytes: 1 << 20)
            let log = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
            let arena = PayloadArena()
            var expected: [[UInt8]] = []
            for index in 0..<1500 {
                let bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: index), count: index % 5 == 0 ? 40 : 513 + index % 90)
                expected.append(bytes)
                try log.append(term: Term(1), LogEntryHeader(type: .sessionMessage, correlationID: Int64(index)), payload: arena.keep(bytes))
            }
            let end = try withExtendedLifetime(arena) { try log.commitBatch() }
            func check(_ log: ReplicatedLog<S>) {
                var seen = 0
                log.reader.forEachFrame(from: .zero, limit: end) { frame in
                    #expect(frame.hasValidCRC && Array(frame.payload) == expected[Int(frame.correlationID)], "frame \(frame.correlationID)")
                    #expect(frame.correlationID == Int64(seen))
                    seen += 1
                    return true
                }
                #expect(seen == 1500)
            }
            check(log)
            #expect(try log.waitUntilDurable(end))
            place.restartProcess()
            let reopened = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
            #expect(reopened.appendedPosition == end && reopened.recoveryReport.cutTail == nil)
            check(reopened)
        }
    }

    @Test(arguments: StorageKind.allCases)
    func largeGatheredBatchReadsBackIntact(kind: StorageKind) throws {
        try LogPlace(kind).run(LargeGatheredBatch())
    }

    struct Oversize: LogScenario {
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let log = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration())
            let big = [UInt8](repeating: 1, count: 8 << 10 + 1)
            #expect(throws: LogError.payloadTooLarge(bytes: 8193, maximumBytes: 8192)) {
                try big.withUnsafeBytes { try log.append(term: Term(1), LogEntryHeader(type: .sessionMessage), payload: $0) }
            }
            let arena = PayloadArena()
            try log.append(term: Term(1), LogEntryHeader(type: .sessionMessage), payload: arena.keep([UInt8](repeating: 2, count: 8 << 10)))
            #expect(try withExtendedLifetime(arena) { try log.commitBatch() } == LogPosition(Int64(LogFormat.aligned(64 + 8192))))
            #expect(LogError.payloadTooLarge(bytes: 8193, maximumBytes: 8192).description.contains("maximum of 8192"))
        }
    }

    @Test(arguments: StorageKind.allCases)
    func oversizeMessageIsRefused(kind: StorageKind) throws {
        try LogPlace(kind).run(Oversize())
    }

    /// The follower path: a second log fed the first one's raw bytes ends up with the same entries.
    struct FollowerCopy: LogScenario {
        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            let leaderPlace = LogPlace(.simulated, seed: 99)
            let leader = try ReplicatedLog(storage: try makeLeader(leaderPlace), configuration: testConfiguration())
            let follower = try ReplicatedLog(storage: try makeStorage(), configuration: testConfiguration(method: .pwrite))
            var sent = LogPosition.zero
            for batch in 0..<12 {
                let end = try leader.appendTestEntries(Int64(batch * 25)..<Int64(batch * 25 + 25), term: Term(batch < 6 ? 2 : 5))
                try leader.reader.withRawBytes(from: sent, to: end) { bytes in
                    try follower.appendRaw(bytes, at: follower.appendedPosition)
                }
                sent = end
            }
            #expect(follower.appendedPosition == leader.appendedPosition)
            #expect(follower.readTestEntries().map(\.index) == Array(0..<300))
            #expect(follower.startOfTerm(Term(5)) == leader.startOfTerm(Term(5)))
            // A damaged frame is refused and nothing of the call is kept.
            let more = try leader.appendTestEntries(300..<310, term: Term(5))
            var copy: [UInt8] = []
            leader.reader.withRawBytes(from: sent, to: more) { copy += $0 }
            copy[copy.count / 2] ^= 0x10
            let before = follower.appendedPosition
            #expect(throws: LogError.self) { try copy.withUnsafeBytes { try follower.appendRaw($0, at: before) } }
            #expect(follower.appendedPosition == before)
            #expect(throws: LogError.self) { try copy.withUnsafeBytes { try follower.appendRaw($0, at: before.advanced(by: 32)) } }
        }

        func makeLeader(_ place: LogPlace) throws -> KeelSimulationStorage { KeelSimulationStorage(disk: place.disk!) }
    }

    @Test(arguments: StorageKind.allCases)
    func followerAppendsLeaderBytes(kind: StorageKind) throws {
        try LogPlace(kind).run(FollowerCopy())
    }
}
