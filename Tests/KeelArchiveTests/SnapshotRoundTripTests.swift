import KeelArchive
import KeelCore
import KeelService
import Testing

/// Snapshots written and read back on both storages: multi-chunk states, both sections, reopening.
@Suite struct SnapshotRoundTripTests {
    static let smallChunks = ArchiveConfiguration(chunkPayloadBytes: 4096)

    @Test(arguments: StorageKind.allCases)
    func multiChunkStatesRoundTripAndSurviveReopening(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let first = SnapshotStates.make(seed: 1, serviceBytes: 150_000)
            let second = SnapshotStates.make(seed: 2, serviceBytes: 4096 * 7, consensusBytes: 1)
            do {
                let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.smallChunks)
                #expect(archive.snapshots().isEmpty)
                #expect(archive.newestValidSnapshot() == nil)
                let a = try takeSnapshot(archive, testHeader(position: 4096), first)
                let b = try takeSnapshot(archive, testHeader(position: 8192, term: 4), second, largestPiece: 9000)
                #expect(a.id < b.id)
                #expect(archive.snapshots() == [a, b])
                #expect(b.position == LogPosition(8192) && b.term == Term(4) && b.serviceVersion == 2 && b.memberID == MemberID(1))
                let loaded = try #require(try loadNewest(archive))
                #expect(loaded.entry == b)
                #expect(loaded.states == second, "the newest snapshot's bytes come back exactly")
                #expect(loaded.rejected.isEmpty)
            }
            // A new process finds both, and the newest is the same.
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.smallChunks)
            #expect(archive.repairs.isEmpty, "a clean shutdown needs no repair: \(archive.repairs)")
            #expect(archive.snapshots().map(\.position) == [LogPosition(4096), LogPosition(8192)])
            let load = try #require(archive.newestValidSnapshot())
            #expect(load.header == testHeader(position: 8192, term: 4))
            #expect(load.sections == [.consensusState, .serviceState])
            #expect(load.byteCount(of: .serviceState) == Int64(second.service.count))
            #expect(try readSection(load, .serviceState) == second.service)
            #expect(try readSection(load, .consensusState) == second.consensus, "sections are read in any order")
            load.close()
            // The older one is still whole.
            #expect(archive.verify(archive.snapshots()[0]) == nil)
        }
    }

    @Test(arguments: StorageKind.allCases)
    func fileHasTheDocumentedShape(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.smallChunks)
            let states = SnapshotStates.make(seed: 3, serviceBytes: 4096 * 2 + 100, consensusBytes: 10)
            let entry = try takeSnapshot(archive, testHeader(position: 64), states)
            let bytes = place.contents(of: entry.fileName)
            // header 128; consensus: start 16 + one chunk 16+10; service: start 16 + 2 full chunks + 100; trailer 32.
            let expected = 128 + 16 + (16 + 10) + 16 + 2 * (16 + 4096) + (16 + 100) + 32
            #expect(bytes.count == expected)
            #expect(entry.lengthBytes == Int64(expected))
            #expect(Array(bytes[0..<8]) == Array("KEELSNAP".utf8))
            #expect(entry.fileName == "snapshot-0000000000000001.snap")
            let names = try makeStorage().listFiles()
            #expect(names == ["catalog.0", "catalog.1", entry.fileName], "no temporary file is left behind")
        }
    }

    @Test(arguments: StorageKind.allCases)
    func serviceReadsItsStateThroughTheServiceProtocols(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.smallChunks)
            let writing = try archive.beginSnapshot(testHeader(position: 128, serviceVersion: 7))
            try writing.beginSection(.serviceState)
            let writer: any SnapshotWriter = writing
            try writer.write(Int64(-42))
            try writer.write(UInt64.max)
            let blob = patternBytes(count: 10_000, seed: 5)
            try blob.withUnsafeBytes { try writer.writeLengthPrefixed($0) }
            try writing.finish()

            let load = try #require(archive.newestValidSnapshot())
            let reader: any SnapshotReader = try #require(try load.reader(for: .serviceState))
            #expect(reader.serviceVersion == 7)
            #expect(try reader.readInt64() == -42)
            #expect(try reader.readUInt64() == UInt64.max)
            #expect(try reader.readLengthPrefixed(maxBytes: 20_000) == blob)
            var spare = [UInt8](repeating: 0, count: 8)
            #expect(try spare.withUnsafeMutableBytes { try reader.read(into: $0) } == 0, "0 at the end of the section")
            #expect(try load.reader(for: .consensusState) == nil, "a section never written is absent")
        }
    }

    @Test(arguments: StorageKind.allCases)
    func largeWritesGoStraightThroughAndEmptySectionsAreKept(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.smallChunks)
            let big = patternBytes(count: 4096 * 5 + 17, seed: 11)
            let writing = try archive.beginSnapshot(testHeader(position: 0))
            try writing.beginSection(.consensusState)
            try writing.beginSection(.serviceState)
            try big.withUnsafeBytes { try writing.append(UnsafeRawBufferPointer(rebasing: $0[0..<3])) }
            try big.withUnsafeBytes { try writing.append(UnsafeRawBufferPointer(rebasing: $0[3...])) }
            try writing.finish()
            let load = try #require(archive.newestValidSnapshot())
            #expect(load.byteCount(of: .consensusState) == 0)
            #expect(try readSection(load, .consensusState) == [])
            #expect(try readSection(load, .serviceState) == big)
        }
    }

    @Test func misuseIsRefusedWithoutDamage() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.smallChunks)
            #expect(throws: ArchiveError.self) { try SnapshotArchive(storage: try makeStorage(), configuration: ArchiveConfiguration(chunkPayloadBytes: 10)) }
            let writing = try archive.beginSnapshot(testHeader(position: 0))
            #expect(throws: ArchiveError.snapshotInProgress(id: writing.id)) { try archive.beginSnapshot(testHeader(position: 1)) }
            let byte: [UInt8] = [1]
            #expect(throws: ArchiveError.self, "a write needs a section") { try byte.withUnsafeBytes { try writing.append($0) } }
            try writing.beginSection(.serviceState)
            #expect(throws: ArchiveError.self, "a section is written once") { try writing.beginSection(.serviceState) }
            try byte.withUnsafeBytes { try writing.append($0) }
            writing.abandon()
            #expect(throws: ArchiveError.self) { try writing.finish() }
            #expect(try makeStorage().listFiles() == ["catalog.0", "catalog.1"], "an abandoned snapshot leaves no file")
            #expect(archive.snapshots().isEmpty)
            // The archive takes the next snapshot as if nothing happened.
            let entry = try takeSnapshot(archive, testHeader(position: 32), SnapshotStates.make(seed: 4, serviceBytes: 100))
            #expect(archive.snapshots() == [entry])
        }
    }

    @Test func droppingAnUnfinishedWritingAbandonsIt() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.smallChunks)
            do {
                let writing = try archive.beginSnapshot(testHeader(position: 0))
                try writing.beginSection(.serviceState)
                try patternBytes(count: 9000, seed: 1).withUnsafeBytes { try writing.append($0) }
            }
            #expect(try makeStorage().listFiles() == ["catalog.0", "catalog.1"])
            _ = try archive.beginSnapshot(testHeader(position: 0)).id  // no snapshot in progress any more
        }
    }
}
