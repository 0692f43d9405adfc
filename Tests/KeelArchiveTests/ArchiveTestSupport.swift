import Glibc
import KeelArchive
import KeelCore
import KeelIO
import KeelService
import KeelSimulation
import KeelWire
import Testing

/// The two storages every archive test runs on.
enum StorageKind: String, CaseIterable, CustomStringConvertible, Sendable {
    case simulated, ioUring
    var description: String { rawValue }
}

/// A fresh directory under /tmp, removed with its contents when released.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "keel-archive-test") {
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

/// Where a test's archive lives: a directory of a simulated disk or a real temporary directory.
/// `makeStorage()` gives a new storage on the same place ("restarting the process").
final class ArchivePlace {
    let kind: StorageKind
    let disk: SimulatedDisk?
    let directory: TemporaryDirectory?
    static let simulatedDirectory = "archive"

    init(_ kind: StorageKind, seed: UInt64 = 1, faults: SimulatedFaultModel = .loseAllUnsynced, capacityBytes: Int64 = 1 << 30) {
        self.kind = kind
        switch kind {
        case .simulated:
            disk = SimulatedDisk(seed: seed, configuration: SimulatedDiskConfiguration(
                capacityBytes: capacityBytes, fileCapacityBytes: 8 << 20, faults: faults))
            directory = nil
        case .ioUring:
            disk = nil
            directory = TemporaryDirectory()
        }
    }

    /// Runs `body` with a factory of storages on this place (each storage a "process").
    func run(_ body: (_ makeStorage: () throws -> AnyStorage) throws -> Void) throws {
        switch kind {
        case .simulated: try body { AnyStorage(SimulatedStorage(disk: self.disk!, directory: Self.simulatedDirectory)) }
        case .ioUring: try body { AnyStorage(try IOUringStorage(directory: self.directory!.path, ring: try Ring())) }
        }
    }

    /// The file's bytes as reads see them.
    func contents(of name: String) -> [UInt8] {
        switch kind {
        case .simulated:
            return disk!.contents(ofFile: name, directory: Self.simulatedDirectory)!
        case .ioUring:
            let fd = open("\(directory!.path)/\(name)", O_RDONLY)
            precondition(fd >= 0, "open \(name): errno \(errno)")
            defer { close(fd) }
            var status = stat()
            fstat(fd, &status)
            var bytes = [UInt8](repeating: 0, count: Int(status.st_size))
            let got = bytes.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, $0.count, 0) }
            precondition(got == bytes.count, "short read of \(name)")
            return bytes
        }
    }

    /// Flips one bit of a file's byte in place (on a simulated disk also in stable storage).
    func flipBit(in name: String, at offset: Int, bit: Int = 0) {
        switch kind {
        case .simulated:
            disk!.flipBit(inFile: name, directory: Self.simulatedDirectory, atOffset: Int64(offset), bit: bit)
        case .ioUring:
            let fd = open("\(directory!.path)/\(name)", O_RDWR)
            precondition(fd >= 0, "open \(name): errno \(errno)")
            defer { close(fd) }
            var byte: UInt8 = 0
            precondition(pread(fd, &byte, 1, off_t(offset)) == 1, "read of \(name) at \(offset)")
            byte ^= UInt8(1) << UInt8(bit)
            precondition(pwrite(fd, &byte, 1, off_t(offset)) == 1, "write of \(name) at \(offset)")
        }
    }

    /// Overwrites bytes of a file at `offset` (the file must be at least that long).
    func overwrite(_ name: String, at offset: Int, with bytes: [UInt8]) {
        let current = contents(of: name)
        for (index, byte) in bytes.enumerated() {
            var differing = current[offset + index] ^ byte
            var bit = 0
            while differing != 0 {
                if differing & 1 == 1 { flipBit(in: name, at: offset + index, bit: bit) }
                differing >>= 1
                bit += 1
            }
        }
    }

    /// Appends bytes to a file (real directory only; on a simulated disk through a storage).
    func append(_ bytes: [UInt8], to name: String) throws {
        try run { makeStorage in
            let storage = try makeStorage()
            let file = try storage.openFile(name, create: false)
            try storage.write(file, at: try storage.fileSize(file), bytes: bytes)
            storage.closeFile(file)
        }
    }
}

/// Deterministic bytes from a seed (a state to snapshot).
func patternBytes(count: Int, seed: UInt64) -> [UInt8] {
    var random = SeededRandom(seed: seed)
    var bytes = [UInt8](repeating: 0, count: count)
    var index = 0
    while index < count {
        var word = random.next()
        for _ in 0..<8 where index < count {
            bytes[index] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            index += 1
        }
    }
    return bytes
}

/// A header for tests: the position is the interesting part.
func testHeader(position: Int64, term: Int64 = 3, serviceVersion: UInt32 = 2) -> SnapshotHeader {
    SnapshotHeader(
        serviceVersion: serviceVersion, clusterID: 0xC1A5_7E12, term: Term(term), position: LogPosition(position),
        timestamp: ClusterTime(nanosSinceEpoch: 1_800_000_000_000_000_000 + position), memberID: MemberID(1))
}

/// Writes `bytes` into `writer` in pieces of random sizes (some larger than a chunk).
func writeInPieces(_ bytes: [UInt8], to writer: some SnapshotWriter, random: inout SeededRandom, largestPiece: Int) throws {
    var offset = 0
    while offset < bytes.count {
        let size = min(bytes.count - offset, Int(random.integer(in: 1...Int64(largestPiece))))
        try bytes.withUnsafeBytes { try writer.write(UnsafeRawBufferPointer(rebasing: $0[offset..<(offset + size)])) }
        offset += size
    }
}

/// The two states of one snapshot.
struct SnapshotStates: Equatable {
    var consensus: [UInt8]
    var service: [UInt8]

    static func make(seed: UInt64, serviceBytes: Int, consensusBytes: Int = 3000) -> SnapshotStates {
        SnapshotStates(consensus: patternBytes(count: consensusBytes, seed: seed &* 31 &+ 7), service: patternBytes(count: serviceBytes, seed: seed))
    }
}

/// Writes a whole snapshot (consensus section, then service section) and finishes it.
@discardableResult
func takeSnapshot<S: Storage>(
    _ archive: SnapshotArchive<S>, _ header: SnapshotHeader, _ states: SnapshotStates, seed: UInt64 = 9, largestPiece: Int = 20_000
) throws -> SnapshotEntry {
    var random = SeededRandom(seed: seed)
    let writing = try archive.beginSnapshot(header)
    try writing.beginSection(.consensusState)
    try writeInPieces(states.consensus, to: writing, random: &random, largestPiece: largestPiece)
    try writing.beginSection(.serviceState)
    try writeInPieces(states.service, to: writing, random: &random, largestPiece: largestPiece)
    return try writing.finish()
}

/// Reads a whole section back through its reader, in pieces of varied sizes.
func readSection<S: Storage>(_ load: SnapshotLoad<S>, _ section: SnapshotSection) throws -> [UInt8]? {
    guard let reader = try load.reader(for: section) else { return nil }
    var result: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 7001)
    var size = 1
    while true {
        let count = try buffer.withUnsafeMutableBytes { try reader.read(into: UnsafeMutableRawBufferPointer(rebasing: $0[0..<size])) }
        if count == 0 { break }
        result.append(contentsOf: buffer[0..<count])
        size = size * 3 % 7001 + 1
    }
    return result
}

/// Loads the newest valid snapshot and reads both sections.
func loadNewest<S: Storage>(_ archive: SnapshotArchive<S>) throws -> (entry: SnapshotEntry, states: SnapshotStates, rejected: [SnapshotProblem])? {
    guard let load = archive.newestValidSnapshot() else { return nil }
    defer { load.close() }
    let states = SnapshotStates(consensus: try readSection(load, .consensusState) ?? [], service: try readSection(load, .serviceState) ?? [])
    return (load.entry, states, load.rejected)
}

/// CRC32C for tests that forge headers (KeelWire's, which the archive uses).
func crc32cForTests(_ bytes: UnsafeRawBufferPointer) -> UInt32 { CRC32C.checksum(bytes) }
