import KeelCore
import Testing

@Suite struct ErrorLogTests {
    @Test func distinctErrorsAreStoredOnceWithCountAndFirstAndLastTime() throws {
        let region = ZeroedRegion(bytes: 4096)
        let log = ErrorLogWriter(memory: region.memory, pid: 99, startEpochNanos: 5)
        #expect(log.record(kind: .storage, message: "fdatasync failed: EIO", epochNanos: 100) == .added)
        #expect(log.record(kind: .transport, message: "connect refused", epochNanos: 150) == .added)
        #expect(log.record(kind: .storage, message: "fdatasync failed: EIO", epochNanos: 200) == .repeated)
        #expect(log.record(kind: .storage, message: "fdatasync failed: EIO", epochNanos: 300) == .repeated)
        // Same message, other kind: a distinct error.
        #expect(log.record(kind: .internal, message: "connect refused", epochNanos: 400) == .added)

        let reader = try ErrorLogReader(memory: region.readOnly)
        #expect(reader.pid == 99)
        #expect(reader.startEpochNanos == 5)
        #expect(reader.droppedCount == 0)
        #expect(reader.entries() == [
            ErrorLogEntry(kind: .storage, message: "fdatasync failed: EIO", count: 3, firstEpochNanos: 100, lastEpochNanos: 300),
            ErrorLogEntry(kind: .transport, message: "connect refused", count: 1, firstEpochNanos: 150, lastEpochNanos: 150),
            ErrorLogEntry(kind: .internal, message: "connect refused", count: 1, firstEpochNanos: 400, lastEpochNanos: 400),
        ])
    }

    @Test func aFullLogKeepsTheOldestAndCountsNewDistinctErrorsAsDropped() throws {
        // Room for exactly three records of a 24-byte message (40 + 24 = 64 bytes each).
        let region = ZeroedRegion(bytes: ErrorLogLayout.headerBytes + 3 * 64)
        let log = ErrorLogWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        for index in 0..<5 {
            let message = "error number \(index) happened"  // 24 bytes
            #expect(log.record(kind: .consensus, message: message, epochNanos: Int64(index)) == (index < 3 ? .added : .dropped))
        }
        // Repeats of stored errors still count when full.
        #expect(log.record(kind: .consensus, message: "error number 0 happened", epochNanos: 10) == .repeated)
        let reader = try ErrorLogReader(memory: region.readOnly)
        let entries = reader.entries()
        #expect(entries.map(\.message) == ["error number 0 happened", "error number 1 happened", "error number 2 happened"])
        #expect(entries[0].count == 2)
        #expect(entries[0].lastEpochNanos == 10)
        #expect(reader.droppedCount == 2)
        #expect(reader.usedBytes == 3 * 64)
    }

    @Test func longMessagesAreCutAndStillMatchTheirRepeats() throws {
        let region = ZeroedRegion(bytes: 16 * 1024)
        let log = ErrorLogWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        let long = String(repeating: "ab", count: 5000)
        #expect(log.record(kind: .service, message: long, epochNanos: 1) == .added)
        #expect(log.record(kind: .service, message: long, epochNanos: 2) == .repeated)
        let entries = try ErrorLogReader(memory: region.readOnly).entries()
        #expect(entries.count == 1)
        #expect(entries[0].message.utf8.count == ErrorLogLayout.messageBytesMax)
        #expect(entries[0].count == 2)
    }

    @Test func manyThreadsRecordingLoseNoOccurrence() async throws {
        let region = ZeroedRegion(bytes: ErrorLogLayout.defaultFileBytes)
        let log = ErrorLogWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for index in 0..<1000 {
                        log.record(kind: .transport, message: "peer \(index % 10) reset", epochNanos: Int64(worker * 1000 + index))
                    }
                }
            }
        }
        let entries = try ErrorLogReader(memory: region.readOnly).entries()
        #expect(entries.count == 10)
        #expect(entries.map(\.count).reduce(0, +) == 4000)
        #expect(entries.allSatisfy { $0.count == 400 })
    }

    @Test func theReaderRejectsOtherFiles() throws {
        let region = ZeroedRegion(bytes: 1024)
        #expect(throws: ObservabilityFormatError.notInitialized) { try ErrorLogReader(memory: region.readOnly) }
        let counters = CountersWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        _ = counters
        #expect(throws: ObservabilityFormatError.wrongMagic(found: CountersLayout.magic, expected: ErrorLogLayout.magic)) {
            try ErrorLogReader(memory: region.readOnly)
        }
    }
}

@Suite struct ErrorReporterTests {
    @Test func reportsAreLoggedAndCountedByKindFromManyThreads() async throws {
        let log = InMemoryErrorLog(bytes: 64 * 1024)
        let counters = InMemoryCounters(capacity: NodeCounters.slotCount(rejectionReasonCount: 1))
        let node = NodeCounters(writer: counters.writer, rejectionReasons: ["too-short"])
        let reporter = ErrorReporter(log: log.writer, counters: node)
        await withTaskGroup(of: Void.self) { group in
            for worker in 0..<4 {
                group.addTask {
                    for index in 0..<500 {
                        reporter.report(index % 2 == 0 ? .storage : .transport, "failure \(index % 3)", epochNanos: Int64(worker * 500 + index))
                    }
                }
            }
        }
        #expect(node.errors(kind: .storage).get() == 1000, "no increment is lost with several writers")
        #expect(node.errors(kind: .transport).get() == 1000)
        let entries = log.reader.entries()
        #expect(entries.count == 6)  // 2 kinds × 3 messages
        #expect(entries.map(\.count).reduce(0, +) == 2000)
    }
}
