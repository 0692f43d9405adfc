import Glibc
import KeelCore
import Testing
@testable import KeelIO

/// IO-specific behaviour of `IOUringStorage` on real files (the shared behaviour spec lives in
/// Tests/KeelStorageSpecTests).
@Suite struct IOUringStorageTests {
    let directory = TemporaryDirectory()
    let ring: Ring
    let storage: IOUringStorage

    init() throws {
        ring = try Ring()
        storage = try IOUringStorage(directory: directory.path, ring: ring)
    }

    @Test func aReadingMappingSeesBytesWrittenWithPwriteAfterItWasMade() throws {
        let file = try storage.openFile("segment", create: true)
        try storage.preallocate(file, bytes: 8192)
        let mapping = try storage.mapForReading(file, bytes: 8192)
        defer { storage.unmap(mapping) }
        try storage.write(file, at: 4096, bytes: [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(Array(mapping[4096..<4100]) == [0xDE, 0xAD, 0xBE, 0xEF])
        #expect(mapping[4100] == 0)
    }

    @Test func remappingAfterGrowthSeesTheNewBytes() throws {
        let file = try storage.openFile("growing", create: true)
        try storage.write(file, at: 0, bytes: [1, 2, 3, 4])
        let small = try storage.mapForReading(file, bytes: 4)
        #expect(Array(small) == [1, 2, 3, 4])
        try storage.write(file, at: 10_000, bytes: [9, 8, 7])
        storage.unmap(small)
        let large = try storage.mapForReading(file, bytes: 10_003)
        defer { storage.unmap(large) }
        #expect(Array(large[0..<4]) == [1, 2, 3, 4])
        #expect(Array(large[10_000..<10_003]) == [9, 8, 7])
        #expect(storage.mappingLengths.count == 1)
    }

    @Test func mappingBeyondTheEndOfTheFileIsRefused() throws {
        let file = try storage.openFile("short", create: true)
        try storage.write(file, at: 0, bytes: [1])
        #expect(throws: IOError.self) { _ = try storage.mapForReading(file, bytes: 8192) }
        do {
            _ = try storage.mapForReading(file, bytes: 8192)
        } catch {
            #expect(error.operation == .map && error.errno == EINVAL)
        }
    }

    @Test func storesIntoAWritingMappingReachTheFile() throws {
        let file = try storage.openFile("mapped", create: true)
        try storage.preallocate(file, bytes: 3 * 4096)
        let mapping = try storage.mapForWriting(file, bytes: 3 * 4096, populate: true)
        try storage.prefault(UnsafeRawBufferPointer(mapping), forWriting: true)
        mapping.storeBytes(of: UInt64(0x0102_0304_0506_0708).littleEndian, toByteOffset: 4096, as: UInt64.self)
        try storage.datasync(file)
        storage.unmap(UnsafeRawBufferPointer(mapping))
        #expect(try storage.read(file, at: 4096, count: 8) == [8, 7, 6, 5, 4, 3, 2, 1])
        #expect(storage.mappingLengths.isEmpty)
    }

    @Test func prefaultingAReadingMappingKeepsItsContents() throws {
        let file = try storage.openFile("prefault", create: true)
        try storage.write(file, at: 0, bytes: [UInt8](repeating: 7, count: 3 * 4096))
        let mapping = try storage.mapForReading(file, bytes: 3 * 4096)
        defer { storage.unmap(mapping) }
        // An unaligned range inside the mapping: the start is rounded down to a page.
        try storage.prefault(UnsafeRawBufferPointer(rebasing: mapping[100..<9000]), forWriting: false)
        #expect(mapping.allSatisfy { $0 == 7 })
    }

    @Test func zeroRangeZeroesBytesWithoutChangingTheSize() throws {
        let file = try storage.openFile("zeroed", create: true)
        let pattern = [UInt8](repeating: 0xAB, count: 16_384)
        try storage.write(file, at: 0, bytes: pattern)
        let mapping = try storage.mapForReading(file, bytes: pattern.count)
        defer { storage.unmap(mapping) }
        try storage.zeroRange(file, at: 4096, bytes: 8192)
        #expect(try storage.fileSize(file) == 16_384)
        let contents = try storage.read(file, at: 0, count: 16_384)
        #expect(contents[0..<4096].allSatisfy { $0 == 0xAB })
        #expect(contents[4096..<12_288].allSatisfy { $0 == 0 })
        #expect(contents[12_288...].allSatisfy { $0 == 0xAB })
        #expect(mapping[4096..<12_288].allSatisfy { $0 == 0 }, "the mapping sees the zeroed range")
        // A range reaching past the end neither grows the file nor fails.
        try storage.zeroRange(file, at: 12_288, bytes: 1 << 20)
        #expect(try storage.fileSize(file) == 16_384)
        #expect(try storage.read(file, at: 12_288, count: 4096).allSatisfy { $0 == 0 })
    }

    @Test(arguments: IOUringStorage.PreallocationMethod.allCases)
    func preallocationSetsTheSizeAllocatesBlocksAndReadsAsZeros(method: IOUringStorage.PreallocationMethod) throws {
        let file = try storage.openFile("prealloc-\(method)", create: true)
        try storage.write(file, at: 0, bytes: [1, 2, 3])
        let bytes: Int64 = 1 << 20
        try storage.preallocate(file, bytes: bytes, method: method)
        #expect(try storage.fileSize(file) == bytes)
        var status = stat()
        #expect(fstat(file.rawValue, &status) == 0)
        #expect(Int64(status.st_blocks) * 512 >= bytes, "blocks are allocated, not a sparse file")
        let contents = try storage.read(file, at: 0, count: Int(bytes))
        #expect(Array(contents[0..<3]) == [1, 2, 3], "existing bytes are kept")
        #expect(contents[3...].allSatisfy { $0 == 0 })
        // Preallocating less never shrinks the file.
        try storage.preallocate(file, bytes: 4096, method: method)
        #expect(try storage.fileSize(file) == bytes)
    }

    @Test func listReturnsRegularFilesSortedByName() throws {
        for name in ["b.log", "a.log", "c.log", "B.log"] { storage.closeFile(try storage.openFile(name, create: true)) }
        #expect(mkdir("\(directory.path)/subdirectory", 0o755) == 0)
        #expect(try storage.listFiles() == ["B.log", "a.log", "b.log", "c.log"])
    }

    @Test func renameReplacesTheTargetAndSyncDirectorySucceeds() throws {
        let temporary = try storage.openFile("snapshot.tmp", create: true)
        try storage.write(temporary, at: 0, bytes: [42])
        try storage.datasync(temporary)
        storage.closeFile(temporary)
        storage.closeFile(try storage.openFile("snapshot", create: true))
        try storage.renameFile("snapshot.tmp", to: "snapshot")
        try storage.syncDirectory()
        #expect(try storage.listFiles() == ["snapshot"])
        let renamed = try storage.openFile("snapshot", create: false)
        #expect(try storage.read(renamed, at: 0, count: 8) == [42])
    }

    @Test func deleteRemovesAFileAndMissingFilesFailWithENOENTNamingTheFile() throws {
        storage.closeFile(try storage.openFile("doomed", create: true))
        try storage.deleteFile("doomed")
        #expect(try storage.listFiles().isEmpty)
        do {
            _ = try storage.openFile("doomed", create: false)
            Issue.record("opening a deleted file must fail")
        } catch {
            #expect(error.operation == .open)
            #expect(error.errno == ENOENT)
            #expect(error.description.contains("doomed"))
        }
        #expect(throws: IOError(.delete, errno: ENOENT, subject: "\(directory.path)/doomed")) { try storage.deleteFile("doomed") }
    }

    @Test func aSubmittedReadCompletesWithTheBytes() throws {
        let file = try storage.openFile("async-read", create: true)
        try storage.write(file, at: 100, bytes: [5, 6, 7, 8])
        var buffer = [UInt8](repeating: 0, count: 4)
        try buffer.withUnsafeMutableBytes { destination in
            try storage.submitRead(file, at: 100, into: destination, token: IOToken(11))
            let completions = try collectCompletions(from: storage, count: 1)
            #expect(completions == [IOCompletion(token: IOToken(11), operation: .read, result: 4)])
        }
        #expect(buffer == [5, 6, 7, 8])
    }
}
