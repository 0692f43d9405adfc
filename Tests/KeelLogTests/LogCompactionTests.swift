import KeelCore
import KeelLog
import KeelSimulation
import Testing

/// Moving the log start (compaction) when a step of it fails and the power then goes: the log
/// reopens at the old start or the new one, with every entry after that start intact, and no
/// segment file wholly before the start survives recovery.
@Suite struct LogCompactionTests {
    /// Where the move stops: the start record's write, a segment's deletion, or nowhere (the
    /// deletions are not synced to the directory: a power loss may bring deleted files back).
    enum FailingStep: String, CaseIterable, CustomStringConvertible, Sendable {
        case startRecord, segmentDeletion, none
        var description: String { rawValue }
        var operations: Set<IOOperation> {
            switch self {
            case .startRecord: [.write, .datasync]
            case .segmentDeletion: [.delete]
            case .none: []
            }
        }
    }

    @Test(arguments: FailingStep.allCases, [UInt64(1), 2, 3])
    func powerLossWhenAMoveFailsPartway(step: FailingStep, seed: UInt64) throws {
        let disk = SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(faults: .adversarial))
        let segmentBytes: Int64 = 64 << 10
        var target = LogPosition.zero
        var ends: [LogPosition] = []
        var positions: [(index: Int64, position: LogPosition)] = []
        do {
            let log = try ReplicatedLog(storage: SimulatedStorage(disk: disk), configuration: testConfiguration())
            for batch in 0..<60 { ends.append(try log.appendTestEntries(Int64(batch * 20)..<Int64(batch * 20 + 20), term: Term(batch < 30 ? 1 : 2))) }
            #expect(try log.waitUntilDurable(log.appendedPosition))
            log.reader.forEachFrame(from: .zero, limit: log.appendedPosition) { frame in
                positions.append((frame.correlationID, frame.position))
                return true
            }
            // A segment start well inside the log, as compaction picks it.
            target = LogPosition(log.appendedPosition.rawValue / 2 - log.appendedPosition.rawValue / 2 % segmentBytes)
            #expect(target.rawValue >= 2 * segmentBytes)
            if step == .none {
                try log.moveStart(to: target)
            } else {
                disk.failNextOperations(1_000, errno: Errno.io, operations: step.operations)
                #expect(throws: LogError.self) { try log.moveStart(to: target) }
                disk.failNextOperations(0, errno: Errno.io)
            }
        }
        disk.powerLoss()
        let log = try ReplicatedLog(storage: SimulatedStorage(disk: disk), configuration: testConfiguration())
        let start = log.startPosition
        switch step {
        case .startRecord: #expect(start == .zero, "the start record never became durable")
        case .segmentDeletion, .none: #expect(start == target, "the start record was synced before any deletion")
        }
        // Every entry from the start on, in order, each intact (readTestEntries checks CRCs and payloads).
        let firstIndex = positions.first { $0.position >= start }?.index ?? -1
        #expect(log.readTestEntries().map(\.index) == Array(firstIndex...1_199))
        let segments = disk.fileNames().compactMap(LogFormat.segmentStart(fileName:))
        #expect(segments.allSatisfy { $0.rawValue + segmentBytes > start.rawValue }, "a segment wholly before the start \(start.rawValue) survived: \(segments)")
        // And the move completes on the reopened log.
        if start < target {
            try log.moveStart(to: target)
            #expect(log.startPosition == target)
        }
        #expect(disk.fileNames().compactMap(LogFormat.segmentStart(fileName:)).min() == target)
    }
}
