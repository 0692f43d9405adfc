import Glibc
import Testing
import KeelCore
import KeelIO
import KeelLog
import KeelSimulation

/// The two storages every log test runs on.
enum StorageKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case simulated, ioUring
    var description: String { rawValue }
}

/// A fresh directory under /tmp, removed with its contents when released.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "keel-log-test") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed: errno \(errno)")
        path = String(cString: created!)
    }

    deinit {
        guard let directory = opendir(path) else { return }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { unlink("\(path)/\(name)") }
        }
        closedir(directory)
        rmdir(path)
    }
}

/// Where a test's log lives: a simulated disk or a real temporary directory. `makeStorage()` gives a
/// new storage on the same place ("restarting the process").
final class LogPlace {
    let kind: StorageKind
    let disk: SimulatedDisk?
    let directory: TemporaryDirectory?

    init(_ kind: StorageKind, seed: UInt64 = 1, faults: SimulatedFaultModel = .loseAllUnsynced, capacityBytes: Int64 = 1 << 30) {
        self.kind = kind
        switch kind {
        case .simulated:
            disk = SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(capacityBytes: capacityBytes, fileCapacityBytes: 4 << 20, faults: faults))
            directory = nil
        case .ioUring:
            disk = nil
            directory = TemporaryDirectory()
        }
    }

    /// Runs `scenario` with a factory of storages on this place.
    func run(_ scenario: some LogScenario) throws {
        switch kind {
        case .simulated: try scenario.run(self) { SimulatedStorage(disk: disk!) }
        case .ioUring: try scenario.run(self) { try IOUringStorage(directory: directory!.path, ring: try Ring()) }
        }
    }

    /// Simulates the end of the process that used the storages (the log must be released first).
    func restartProcess() { disk?.crashProcess() }
}

/// A test body written once for both storages.
protocol LogScenario {
    func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws
}

/// Overwrites bytes of a file through a fresh storage, durably (for corruption tests).
func overwrite<S: Storage>(_ storage: S, file name: String, at offset: Int64, with bytes: [UInt8]) throws {
    let file = try storage.openFile(name, create: false)
    try storage.write(file, at: offset, bytes: bytes)
    try storage.datasync(file)
    storage.closeFile(file)
}

/// A small test configuration: 64 KiB segments so a few hundred frames roll over several times.
func testConfiguration(
    durability: DurabilityMode = .durable, method: LogAppendMethod = .mappedCopy, segmentBytes: Int64 = 64 << 10
) -> LogConfiguration {
    LogConfiguration(
        clusterID: 0xC1A5_7E12, segmentLengthBytes: segmentBytes, maxPayloadBytes: 8 << 10,
        durability: durability, appendMethod: method, stagingBufferBytes: 32 << 10,
        gatherPayloadMinimumBytes: 512)  // below the default, so the test payloads (0-699 B) take both paths
}

/// The payload of test entry `index`: its length and bytes follow from the index alone.
func payloadLength(_ index: Int64) -> Int { Int((index &* 2_654_435_761) % 700) }

func payloadByte(_ index: Int64, _ offset: Int) -> UInt8 { UInt8(truncatingIfNeeded: index &* 31 &+ Int64(offset) &* 7) }

func makePayload(_ index: Int64) -> [UInt8] { (0..<payloadLength(index)).map { payloadByte(index, $0) } }

/// Payload bytes that stay valid until the arena goes: the log reads an appended payload until the
/// batch is committed (large ones go out by gather write from the caller's buffer), so a test keeps
/// its payloads here and the arena alive (`withExtendedLifetime`) across `commitBatch`.
final class PayloadArena {
    private var buffers: [UnsafeMutableRawBufferPointer] = []

    func keep(_ bytes: [UInt8]) -> UnsafeRawBufferPointer {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(bytes.count, 1), alignment: 8)
        buffer.copyBytes(from: bytes)
        buffers.append(buffer)
        return UnsafeRawBufferPointer(start: buffer.baseAddress, count: bytes.count)
    }

    deinit { for buffer in buffers { buffer.deallocate() } }
}

extension ReplicatedLog {
    /// Appends entries `indices` in one batch (correlation id = index) and commits.
    @discardableResult
    func appendTestEntries(_ indices: Range<Int64>, term: Term) throws -> LogPosition {
        let arena = PayloadArena()
        for index in indices {
            let raw = arena.keep(makePayload(index))
            try append(term: term, LogEntryHeader(type: .sessionMessage, sessionID: 7, correlationID: index, timestamp: ClusterTime(rawValue: index)), payload: raw)
        }
        return try withExtendedLifetime(arena) { try commitBatch() }
    }

    /// Every entry from the start: (correlation id, term), after checking each payload and CRC.
    func readTestEntries() -> [(index: Int64, term: Term)] {
        var entries: [(Int64, Term)] = []
        reader.forEachFrame(from: startPosition, limit: appendedPosition) { frame in
            #expect(frame.hasValidCRC, "CRC of frame at \(frame.position)")
            let index = frame.correlationID
            let payload = frame.payload
            #expect(payload.count == payloadLength(index), "payload length of entry \(index)")
            let intact = payload.count == payloadLength(index) && (0..<payload.count).allSatisfy { payload[$0] == payloadByte(index, $0) }
            #expect(intact, "payload of entry \(index)")
            entries.append((index, frame.term))
            return true
        }
        return entries
    }
}

typealias KeelSimulationStorage = SimulatedStorage
