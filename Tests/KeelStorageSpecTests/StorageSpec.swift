import KeelCore
import Testing

/// The behaviour every `Storage` must show, written once and run against each implementation
/// (see `StorageSpecTests`). Each check gets a fresh, empty storage.
enum StorageSpec {
    static func createOpenListDeleteRename<S: Storage>(_ storage: S) throws {
        #expect(try storage.listFiles() == [])
        let b = try storage.openFile("b", create: true)
        let a = try storage.openFile("a", create: true)
        #expect(try storage.listFiles() == ["a", "b"], "listed sorted by name")
        #expect(try storage.fileSize(a) == 0, "a created file is empty")
        try storage.write(b, at: 0, bytes: [1, 2, 3])
        try storage.write(a, at: 0, bytes: [9, 9])
        storage.closeFile(a)
        storage.closeFile(b)

        try storage.renameFile("a", to: "c")
        #expect(try storage.listFiles() == ["b", "c"])
        // Renaming over an existing name replaces that file.
        try storage.renameFile("c", to: "b")
        #expect(try storage.listFiles() == ["b"])
        let reopened = try storage.openFile("b", create: false)
        #expect(try storage.read(reopened, at: 0, count: 10) == [9, 9], "the renamed file's bytes, not the replaced one's")
        storage.closeFile(reopened)

        try storage.deleteFile("b")
        #expect(try storage.listFiles() == [])
        try storage.syncDirectory()
    }

    static func writeReadRoundTripWithGrowth<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("data", create: true)
        defer { storage.closeFile(file) }
        let first = pattern(count: 1000, seed: 1)
        try storage.write(file, at: 0, bytes: first)
        #expect(try storage.fileSize(file) == 1000)
        let second = pattern(count: 300, seed: 2)
        try storage.write(file, at: 900, bytes: second)
        #expect(try storage.fileSize(file) == 1200, "a write past the end grows the file")
        // A write beyond the end leaves a gap that reads as zero.
        try storage.write(file, at: 5000, bytes: [0xAB])
        #expect(try storage.fileSize(file) == 5001)

        let all = try storage.read(file, at: 0, count: 5001)
        #expect(Array(all[0..<900]) == Array(first[0..<900]))
        #expect(Array(all[900..<1200]) == second)
        #expect(all[1200..<5000].allSatisfy { $0 == 0 }, "the gap reads as zero")
        #expect(all[5000] == 0xAB)

        var buffer = [UInt8](repeating: 0xEE, count: 16)
        let nearEnd = try buffer.withUnsafeMutableBytes { try storage.read(file, at: 4995, into: $0) }
        #expect(nearEnd == 6, "a read near the end returns only the bytes that exist")
        let atEnd = try buffer.withUnsafeMutableBytes { try storage.read(file, at: 5001, into: $0) }
        #expect(atEnd == 0, "a read at the end returns 0")

        // Bytes survive closing and reopening.
        storage.closeFile(try storage.openFile("data", create: false))
        let again = try storage.openFile("data", create: false)
        #expect(try storage.read(again, at: 900, count: 300) == second)
        storage.closeFile(again)
    }

    static func preallocateGivesLengthAndZeros<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("segment", create: true)
        defer { storage.closeFile(file) }
        try storage.preallocate(file, bytes: 64 * 1024)
        #expect(try storage.fileSize(file) == 64 * 1024)
        let bytes = try storage.read(file, at: 0, count: 64 * 1024)
        #expect(bytes.count == 64 * 1024 && bytes.allSatisfy { $0 == 0 }, "preallocated bytes read as zero")
        try storage.write(file, at: 100, bytes: [7, 7, 7])
        #expect(try storage.fileSize(file) == 64 * 1024, "a write inside the preallocated length does not grow it")
        try storage.preallocate(file, bytes: 4096)
        #expect(try storage.fileSize(file) == 64 * 1024, "preallocate never shrinks")
        #expect(try storage.read(file, at: 100, count: 3) == [7, 7, 7])
    }

    static func readMappingSeesLaterWrites<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("mapped", create: true)
        defer { storage.closeFile(file) }
        try storage.preallocate(file, bytes: 8192)
        let mapping = try storage.mapForReading(file, bytes: 8192)
        defer { storage.unmap(mapping) }
        #expect(mapping.count == 8192)
        #expect(mapping[4000] == 0)
        try storage.write(file, at: 4000, bytes: [0x5A, 0xA5])
        #expect(mapping[4000] == 0x5A && mapping[4001] == 0xA5, "a synchronous write shows in an earlier mapping at once")

        let bytes: [UInt8] = [1, 2, 3, 4]
        try bytes.withUnsafeBytes { buffer in
            try storage.submitWrite(file, at: 8000, buffer, token: IOToken(77), thenDatasync: false)
            let completions = try drain(storage, expecting: 1)
            #expect(completions == [IOCompletion(token: IOToken(77), operation: .write, result: 4)])
        }
        #expect(Array(mapping[8000..<8004]) == bytes, "an asynchronous write shows in the mapping once completed")
    }

    static func writeMappingStoresAreVisibleToRead<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("writable", create: true)
        defer { storage.closeFile(file) }
        try storage.preallocate(file, bytes: 4096)
        let mapping = try storage.mapForWriting(file, bytes: 4096)
        for index in 0..<64 { mapping[1000 + index] = UInt8(index) }
        #expect(try storage.read(file, at: 1000, count: 64) == (0..<64).map(UInt8.init), "stores through the mapping are the file's bytes")
        try storage.datasync(file)
        let reader = try storage.mapForReading(file, bytes: 4096)
        #expect(reader[1063] == 63)
        storage.unmap(reader)
        storage.unmap(UnsafeRawBufferPointer(mapping))
        #expect(try storage.read(file, at: 1000, count: 2) == [0, 1], "bytes stay after unmapping")
    }

    static func zeroRangeKeepsLength<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("zeroed", create: true)
        defer { storage.closeFile(file) }
        try storage.write(file, at: 0, bytes: [UInt8](repeating: 0xFF, count: 10_000))
        try storage.zeroRange(file, at: 4096, bytes: 4096)
        #expect(try storage.fileSize(file) == 10_000)
        let bytes = try storage.read(file, at: 0, count: 10_000)
        #expect(bytes[0..<4096].allSatisfy { $0 == 0xFF })
        #expect(bytes[4096..<8192].allSatisfy { $0 == 0 })
        #expect(bytes[8192..<10_000].allSatisfy { $0 == 0xFF })
        try storage.zeroRange(file, at: 9000, bytes: 5000)
        #expect(try storage.fileSize(file) == 10_000, "zeroing past the end does not grow the file")
        #expect(try storage.read(file, at: 8990, count: 1010).prefix(10).allSatisfy { $0 == 0xFF })
        #expect(try storage.read(file, at: 9000, count: 1000).allSatisfy { $0 == 0 })
    }

    static func asynchronousWritesCompleteWithTheirTokens<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("async", create: true)
        defer { storage.closeFile(file) }
        let payloads = (0..<6).map { pattern(count: 512 + $0 * 100, seed: UInt64($0) + 10) }
        var offsets: [Int64] = []
        var offset: Int64 = 0
        for payload in payloads { offsets.append(offset); offset += Int64(payload.count) }
        // Keep the bytes alive and unchanged until every completion is reaped.
        let buffers = payloads.map { payload in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: payload.count, alignment: 16)
            buffer.copyBytes(from: payload)
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        for index in payloads.indices {
            try storage.submitWrite(file, at: offsets[index], UnsafeRawBufferPointer(buffers[index]),
                                    token: IOToken(UInt64(100 + index)), thenDatasync: index % 2 == 0)
        }
        try storage.submitDatasync(file, token: IOToken(999))
        try storage.flushSubmissions()
        let completions = try drain(storage, expecting: 6 + 3 + 1)

        for index in payloads.indices {
            let token = IOToken(UInt64(100 + index))
            let mine = completions.enumerated().filter { $0.element.token == token }
            #expect(mine.first?.element == IOCompletion(token: token, operation: .write, result: Int32(payloads[index].count)),
                    "the write completes first, counting its bytes")
            if index % 2 == 0 {
                #expect(mine.count == 2 && mine[1].element == IOCompletion(token: token, operation: .datasync, result: 0),
                        "the linked datasync completes after its write, with the same token")
            } else {
                #expect(mine.count == 1)
            }
        }
        #expect(completions.contains(IOCompletion(token: IOToken(999), operation: .datasync, result: 0)))
        for index in payloads.indices {
            #expect(try storage.read(file, at: offsets[index], count: payloads[index].count) == payloads[index])
        }
    }

    static func reapNeverBlocksAndWaitReturns<S: Storage>(_ storage: S) throws {
        var completions = IOCompletionBuffer(capacity: 4)
        storage.reapCompletions(into: &completions)
        #expect(completions.count == 0, "nothing submitted, nothing reaped, and no blocking")
        try storage.waitForCompletions(timeoutNanos: 1_000_000)
        storage.reapCompletions(into: &completions)
        #expect(completions.count == 0, "a wait with nothing in flight returns after its timeout")

        let file = try storage.openFile("sync-only", create: true)
        defer { storage.closeFile(file) }
        try storage.submitDatasync(file, token: IOToken(5))
        let done = try drain(storage, expecting: 1)
        #expect(done == [IOCompletion(token: IOToken(5), operation: .datasync, result: 0)])
    }

    static func emptyMappingHoldsNothing<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("empty", create: true)
        defer { storage.closeFile(file) }
        let mapping = try storage.mapForReading(file, bytes: 0)
        #expect(mapping.count == 0, "mapping zero bytes of an empty file gives an empty buffer")
        storage.unmap(mapping)
        let beyond = #expect(throws: IOError.self) { try storage.mapForReading(file, bytes: 4096) }
        #expect(beyond?.operation == .map && beyond?.errno == Errno.invalid, "mapping beyond the end is refused")
    }

    static func errorsNameTheirOperation<S: Storage>(_ storage: S) throws {
        let missing = #expect(throws: IOError.self) { try storage.openFile("missing", create: false) }
        #expect(missing?.operation == .open && missing?.errno == Errno.noEntry, "open of a missing file without create is ENOENT")
        let deleted = #expect(throws: IOError.self) { try storage.deleteFile("missing") }
        #expect(deleted?.operation == .delete && deleted?.errno == Errno.noEntry)
        let renamed = #expect(throws: IOError.self) { try storage.renameFile("missing", to: "other") }
        #expect(renamed?.operation == .rename && renamed?.errno == Errno.noEntry)

        // A file that is not open. (Closing a real descriptor and using it again would race with
        // other tests reusing the number, so use one above any descriptor limit; the simulated
        // storage's closed-file case is in SimulatedDiskFaultTests.)
        let notOpen = FileID(rawValue: 999_999)
        let read = #expect(throws: IOError.self) { try storage.read(notOpen, at: 0, count: 1) }
        #expect(read?.operation == .read && read?.errno == Errno.badFile, "read on a file that is not open")
        let write = #expect(throws: IOError.self) { try storage.write(notOpen, at: 0, bytes: [2]) }
        #expect(write?.operation == .write && write?.errno == Errno.badFile, "write on a file that is not open")
        let size = #expect(throws: IOError.self) { try storage.fileSize(notOpen) }
        #expect(size?.operation == .stat && size?.errno == Errno.badFile, "size of a file that is not open")
    }

    // MARK: Helpers

    /// Deterministic, non-repeating bytes.
    static func gatherWriteLaysPiecesEndToEnd<S: Storage>(_ storage: S) throws {
        let file = try storage.openFile("gathered", create: true)
        defer { storage.closeFile(file) }
        let sizes = [5, 0, 4096, 1, 700, 3000]
        let pieces = sizes.enumerated().map { pattern(count: $0.element, seed: UInt64(10 + $0.offset)) }
        let buffers = pieces.map { bytes -> UnsafeMutableRawBufferPointer in
            let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: max(1, bytes.count), alignment: 8)
            buffer.copyBytes(from: bytes)
            return buffer
        }
        defer { for buffer in buffers { buffer.deallocate() } }
        let vectors = zip(buffers, sizes).map { IOVector(base: UnsafeRawPointer($0.baseAddress), count: $1) }
        try storage.write(file, at: 0, bytes: [UInt8](repeating: 0xEE, count: 9000))
        try vectors.withUnsafeBufferPointer { try storage.write(file, at: 100, gathering: $0) }
        let total = sizes.reduce(0, +)
        #expect(try storage.fileSize(file) == 9000, "a gather write inside the file does not grow it")
        let all = try storage.read(file, at: 0, count: 9000)
        #expect(all[0..<100].allSatisfy { $0 == 0xEE }, "bytes before the write are untouched")
        #expect(Array(all[100..<100 + total]) == pieces.flatMap { $0 }, "the pieces, end to end")
        #expect(all[(100 + total)...].allSatisfy { $0 == 0xEE }, "bytes after the write are untouched")
        // Past the end, a gather write grows the file like a plain write.
        try vectors.withUnsafeBufferPointer { try storage.write(file, at: 9000, gathering: $0) }
        #expect(try storage.fileSize(file) == Int64(9000 + total))
        #expect(try storage.read(file, at: 9000, count: total) == pieces.flatMap { $0 })
    }

    static func submittedDirectorySyncCompletes<S: Storage>(_ storage: S) throws {
        storage.closeFile(try storage.openFile("created", create: true))
        try storage.submitSyncDirectory(token: IOToken(77))
        try storage.flushSubmissions()
        let completions = try drain(storage, expecting: 1)
        #expect(completions.first?.token == IOToken(77) && completions.first?.operation == .syncDirectory)
        #expect(completions.first?.error == nil)
    }

    static func pattern(count: Int, seed: UInt64) -> [UInt8] {
        var random = SeededRandom(seed: seed)
        return (0..<count).map { _ in UInt8(truncatingIfNeeded: random.next()) }
    }

    /// Waits and reaps until `expected` completions have arrived (failing the test if they do not).
    static func drain<S: Storage>(_ storage: S, expecting expected: Int) throws -> [IOCompletion] {
        var buffer = IOCompletionBuffer(capacity: 3)
        var completions: [IOCompletion] = []
        var rounds = 0
        while completions.count < expected && rounds < 10_000 {
            rounds += 1
            storage.reapCompletions(into: &buffer)
            for index in 0..<buffer.count { completions.append(buffer[index]) }
            buffer.removeAll()
            if completions.count < expected { try storage.waitForCompletions(timeoutNanos: 100_000_000) }
        }
        #expect(completions.count == expected, "expected \(expected) completions, got \(completions)")
        return completions
    }
}
