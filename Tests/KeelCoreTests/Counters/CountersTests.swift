import KeelCore
import Testing

/// Zeroed, 64-byte aligned memory for a counters region or error log, freed at deinit.
final class ZeroedRegion: @unchecked Sendable {
    let memory: UnsafeMutableRawBufferPointer
    init(bytes: Int) {
        memory = .allocate(byteCount: bytes, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
    }
    deinit { memory.deallocate() }
    var readOnly: UnsafeRawBufferPointer { UnsafeRawBufferPointer(memory) }
}

@Suite struct CountersTests {
    @Test func writerLaysOutHeaderAndSlotsThatTheReaderReadsBack() throws {
        let region = ZeroedRegion(bytes: CountersLayout.requiredBytes(capacity: 4))
        let writer = CountersWriter(memory: region.memory, pid: 4242, startEpochNanos: 1_700_000_000_000_000_000)
        #expect(writer.capacity == 4)
        let term = try #require(writer.allocate(type: .term, label: "term", initialValue: 7))
        let bytes = try #require(writer.allocate(type: .bytesIn, label: "bytes in"))
        term.increment()
        bytes.increment(by: 1000)
        bytes.increment(by: 24)

        let reader = try CountersReader(memory: region.readOnly)
        #expect(reader.pid == 4242)
        #expect(reader.startEpochNanos == 1_700_000_000_000_000_000)
        #expect(reader.capacity == 4)
        #expect(reader.version == CountersLayout.version)
        #expect(reader.snapshot() == [
            CounterSnapshot(index: 0, type: .term, label: "term", value: 8),
            CounterSnapshot(index: 1, type: .bytesIn, label: "bytes in", value: 1024),
        ])
        // The values sit where the layout says: slot i's Int64 at header + i * slot size.
        #expect(region.readOnly.load(fromByteOffset: CountersLayout.headerBytes + CountersLayout.slotBytes, as: Int64.self) == 1024)
        #expect(region.readOnly.load(fromByteOffset: 0, as: UInt64.self) == CountersLayout.magic)
    }

    @Test func aFullRegionRefusesMoreCounters() {
        let region = ZeroedRegion(bytes: CountersLayout.requiredBytes(capacity: 2) + 100)
        let writer = CountersWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        #expect(writer.capacity == 2)
        #expect(writer.allocate(type: .term, label: "a") != nil)
        #expect(writer.allocate(type: .term, label: "b") != nil)
        #expect(writer.allocate(type: .term, label: "c") == nil)
    }

    @Test func longLabelsAreCutAtACharacterBoundary() throws {
        let region = ZeroedRegion(bytes: CountersLayout.requiredBytes(capacity: 1))
        let writer = CountersWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        // 95 ASCII bytes then a 2-byte character straddling the 96-byte limit.
        let label = String(repeating: "x", count: 95) + "é" + "tail"
        _ = writer.allocate(type: .role, label: label)
        let read = try CountersReader(memory: region.readOnly).label(at: 0)
        #expect(read == String(repeating: "x", count: 95))
    }

    @Test func theReaderRejectsWhatIsNotACountersRegion() throws {
        #expect(throws: ObservabilityFormatError.tooSmall(bytes: 16, minimum: CountersLayout.headerBytes)) {
            try CountersReader(memory: UnsafeRawBufferPointer(ZeroedRegion(bytes: 16).memory))
        }
        let region = ZeroedRegion(bytes: CountersLayout.requiredBytes(capacity: 2))
        #expect(throws: ObservabilityFormatError.notInitialized) { try CountersReader(memory: region.readOnly) }

        _ = CountersWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        region.memory.storeBytes(of: 2 as UInt32, toByteOffset: 8, as: UInt32.self)
        #expect(throws: ObservabilityFormatError.unsupportedVersion(found: 2, supported: 1)) { try CountersReader(memory: region.readOnly) }

        region.memory.storeBytes(of: 1 as UInt32, toByteOffset: 8, as: UInt32.self)
        region.memory.storeBytes(of: 1000 as UInt32, toByteOffset: 20, as: UInt32.self)  // capacity beyond the region
        #expect(throws: ObservabilityFormatError.self) { try CountersReader(memory: region.readOnly) }

        region.memory.storeBytes(of: 0x1234 as UInt64, toByteOffset: 0, as: UInt64.self)
        #expect(throws: ObservabilityFormatError.wrongMagic(found: 0x1234, expected: CountersLayout.magic)) {
            try CountersReader(memory: region.readOnly)
        }
    }

    @Test func aReaderOnAnotherThreadSeesValuesGrowLive() async throws {
        let region = ZeroedRegion(bytes: CountersLayout.requiredBytes(capacity: 2))
        let writer = CountersWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        let frames = try #require(writer.allocate(type: .framesOut, label: "frames out"))
        let total: Int64 = 2_000_000
        let producer = Task.detached {
            for _ in 0..<total { frames.increment() }
        }
        let reader = try CountersReader(memory: region.readOnly)
        var previous: Int64 = 0
        var distinctValuesSeen = 0
        while previous < total {
            let value = reader.value(at: 0)
            #expect(value >= previous, "a counter never goes backwards for its reader")
            if value != previous { distinctValuesSeen += 1 }
            previous = value
            await Task.yield()
        }
        await producer.value
        #expect(reader.value(at: 0) == total)
        #expect(distinctValuesSeen >= 1)
    }

    @Test func theNodeSetAllocatesEveryCounterWithStableTypes() throws {
        let reasons = ["too-short", "too-long", "unknown-type"]
        let slots = NodeCounters.slotCount(rejectionReasonCount: reasons.count)
        let region = ZeroedRegion(bytes: CountersLayout.requiredBytes(capacity: slots))
        let writer = CountersWriter(memory: region.memory, pid: 1, startEpochNanos: 0)
        let node = NodeCounters(writer: writer, rejectionReasons: reasons)
        node.role.set(RoleCounterValue.leader.rawValue)
        node.term.set(5)
        node.rejectedFrames(reasonCode: 2).increment()
        node.errors(kind: .storage).increment(by: 3)

        let snapshot = try CountersReader(memory: region.readOnly).snapshot()
        #expect(snapshot.count == slots)
        let byLabel = Dictionary(uniqueKeysWithValues: snapshot.map { ($0.label, $0) })
        #expect(byLabel["role"]?.value == 3)
        #expect(byLabel["role"].map { $0.type.describe(value: $0.value) } == "leader")
        #expect(byLabel["election state"].map { $0.type.describe(value: $0.value) } == "awaiting-leader")
        #expect(byLabel["term"]?.value == 5)
        #expect(byLabel["rejected frames: unknown-type"]?.value == 1)
        #expect(byLabel["rejected frames: unknown-type"]?.type == CounterType(rawValue: 1002))
        #expect(byLabel["errors: storage"]?.value == 3)
        #expect(byLabel["errors: storage"]?.type == CounterType(rawValue: 2001))
        #expect(byLabel["errors: storage"]?.type.description == "errors")
        #expect(Set(snapshot.map(\.type)).count == slots, "every counter of the node set has its own type id")
    }
}

@Suite struct InMemoryObservabilityTests {
    @Test func inMemoryRegionsWorkLikeFiles() {
        let counters = InMemoryCounters(capacity: 3, pid: 2)
        let term = counters.writer.allocate(type: .term, label: "term")!
        term.set(4)
        #expect(counters.reader.pid == 2)
        #expect(counters.reader.snapshot() == [CounterSnapshot(index: 0, type: .term, label: "term", value: 4)])

        let errors = InMemoryErrorLog(bytes: 1024, pid: 2)
        errors.writer.record(kind: .consensus, message: "x", epochNanos: 1)
        errors.writer.record(kind: .consensus, message: "x", epochNanos: 2)
        #expect(errors.reader.entries() == [ErrorLogEntry(kind: .consensus, message: "x", count: 2, firstEpochNanos: 1, lastEpochNanos: 2)])
    }
}
