import KeelCore
import KeelIO
@testable import KeelLog
import KeelSimulation
import Testing

/// The background preparation of the next segment (zeros, header, syncs, directory sync, all
/// through the storage's asynchronous operations): crashes at every step leave a recoverable
/// directory, a failed preparation falls back to creating the segment on the spot, and on real
/// files the prepared segment is whole and in place before the log reaches it.
@Suite struct SegmentPreparationTests {
    static let segmentBytes: Int64 = 64 << 10

    /// Many seeds of: open (which starts preparing segment 1), append durably, let a random number
    /// of operations complete in a seeded order, lose power. The reopened log must hold every
    /// durable entry, and a preparation cut before its header was written must leave no segment.
    @Test(arguments: LogSegmentPreallocation.allCases)
    func powerLossAtAnyStepOfAPreparationLeavesARecoverableLog(preallocation: LogSegmentPreallocation) throws {
        var interruptedPhases: Set<String> = []
        for seed in UInt64(1)...30 {
            let disk = SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(fileCapacityBytes: 1 << 20, faults: .adversarial))
            var random = SeededRandom(seed: seed ^ 0x5E6)
            var configuration = testConfiguration(durability: .durable, method: .pwrite, segmentBytes: Self.segmentBytes)
            configuration.segmentPreallocation = preallocation
            var durableEntries: Int64 = 0
            var phaseAtLoss = SegmentPreparer<SimulatedStorage>.Phase.idle
            do {
                let log = try ReplicatedLog(storage: SimulatedStorage(disk: disk), configuration: configuration)
                #expect(log.preparer.phase == (preallocation == .zeroFill ? .zeroing : .syncingZeros), "opening a log starts preparing the next segment")
                let count = random.integer(in: 1...40)
                let end = try log.appendTestEntries(0..<count, term: Term(1))
                if try log.waitUntilDurable(end) { durableEntries = count }
                for _ in 0..<random.integer(in: 0...8) {
                    try log.storage.waitForCompletions(timeoutNanos: 1_000_000)
                    try log.poll()
                }
                phaseAtLoss = log.preparer.phase
                interruptedPhases.insert("\(phaseAtLoss)")
                disk.powerLoss()
            }
            let storage = SimulatedStorage(disk: disk)
            let reopened = try ReplicatedLog(storage: storage, configuration: configuration)
            let entries = reopened.readTestEntries()
            #expect(entries.count >= Int(durableEntries), "seed \(seed): durable entries lost")
            #expect(entries.map(\.index) == Array(0..<Int64(entries.count)), "seed \(seed): not a prefix")
            let segment1 = LogFormat.segmentFileName(start: LogPosition(Self.segmentBytes))
            if phaseAtLoss == .zeroing || phaseAtLoss == .syncingZeros {
                #expect(!reopened.segments.contains { $0.name == segment1 }, "seed \(seed): a segment without a written header was kept")
            }
            // The log goes on across several roll-overs (prepared segments or, after a failure, created ones).
            let first = Int64(entries.count)
            var last = first
            for batch in 0..<20 {
                last = first + Int64(batch + 1) * 25
                try reopened.appendTestEntries(first + Int64(batch) * 25..<last, term: Term(1))
            }
            #expect(reopened.appendedPosition.rawValue > 2 * Self.segmentBytes, "seed \(seed): the test must roll over")
            #expect(reopened.readTestEntries().map(\.index) == Array(0..<last), "seed \(seed)")
        }
        // Power must have struck in the middle of preparations, not only before or after them.
        #expect(interruptedPhases.isSuperset(of: preallocation == .zeroFill ? ["zeroing", "syncingZeros", "idle"] : ["syncingZeros", "idle"]), "phases hit: \(interruptedPhases)")
        #expect(interruptedPhases.count >= 4, "phases hit: \(interruptedPhases)")
    }

    /// A preparation whose writes fail (full disk) is dropped; the segment is then created when
    /// the log needs it, and the log carries on.
    @Test func aFailedPreparationFallsBackToCreatingTheSegment() throws {
        let disk = SimulatedDisk(seed: 3, configuration: SimulatedDiskConfiguration(fileCapacityBytes: 1 << 20, faults: .loseAllUnsynced))
        var configuration = testConfiguration(durability: .durable, method: .pwrite, segmentBytes: Self.segmentBytes)
        configuration.segmentPreallocation = .zeroFill
        let log = try ReplicatedLog(storage: SimulatedStorage(disk: disk), configuration: configuration)
        disk.failNextOperations(1, errno: Errno.noSpace, operations: [.write])  // the first zero write, when it completes
        try log.storage.waitForCompletions(timeoutNanos: 1_000_000)
        try log.poll()
        #expect(log.preparer.phase == .failed)
        #expect(log.preparer.failure?.errno == Errno.noSpace)
        for batch in Int64(0)..<20 { try log.appendTestEntries(batch * 25..<batch * 25 + 25, term: Term(1)) }
        #expect(log.appendedPosition.rawValue > 2 * Self.segmentBytes)
        #expect(log.readTestEntries().map(\.index) == Array(0..<500))
    }

    /// On real files, in both preallocation modes: the next segment is prepared (full size, valid
    /// header, mapped) before the log reaches it, and roll-over needs no file creation.
    @Test(arguments: LogSegmentPreallocation.allCases)
    func theNextSegmentIsPreparedAheadOnRealFiles(preallocation: LogSegmentPreallocation) throws {
        let directory = TemporaryDirectory()
        var configuration = testConfiguration(durability: .durable, method: .pwrite, segmentBytes: Self.segmentBytes)
        configuration.segmentPreallocation = preallocation
        let log = try ReplicatedLog(storage: try IOUringStorage(directory: directory.path, ring: try Ring()), configuration: configuration)
        var rounds = 0
        while log.segments.count < 2 && rounds < 5_000 {
            rounds += 1
            try log.poll()
            if log.segments.count < 2 { try log.storage.waitForCompletions(timeoutNanos: 1_000_000) }
        }
        #expect(log.segments.count == 2, "segment 1 prepared and taken into use before any append")
        #expect(log.preparer.phase == .idle)
        let name = LogFormat.segmentFileName(start: LogPosition(Self.segmentBytes))
        let file = try log.storage.openFile(name, create: false)
        #expect(try log.storage.fileSize(file) == Int64(LogFormat.segmentHeaderRegionBytes) + Self.segmentBytes)
        let header = try log.storage.read(file, at: 0, count: LogFormat.segmentHeaderBytes)
        guard case .valid(let decoded) = header.withUnsafeBytes({ SegmentHeader.decode($0) }) else {
            Issue.record("segment 1 has no valid header")
            return
        }
        #expect(decoded.startPosition == LogPosition(Self.segmentBytes) && decoded.clusterID == configuration.clusterID)
        log.storage.closeFile(file)
        // Roll over twice; each roll-over finds its segment prepared (or waits for it).
        for batch in Int64(0)..<20 { try log.appendTestEntries(batch * 25..<batch * 25 + 25, term: Term(1)) }
        #expect(try log.waitUntilDurable(log.appendedPosition))
        #expect(log.appendedPosition.rawValue > 2 * Self.segmentBytes)
        #expect(log.readTestEntries().map(\.index) == Array(0..<500))
    }
}
