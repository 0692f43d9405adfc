import KeelArchive
import KeelCore
import KeelWire
import Testing

/// Damaged snapshot files are detected (first bad file and offset) and the previous snapshot is used.
@Suite struct SnapshotCorruptionTests {
    static let configuration = ArchiveConfiguration(chunkPayloadBytes: 4096)

    /// The regions of a snapshot written by `writeTwo`: (start offset, length, name). Offsets follow
    /// docs/snapshot-format.md for a consensus section of 100 bytes and a service section of
    /// 4096 + 200 bytes in 4 KiB chunks.
    static let regions: [(start: Int, count: Int, name: String)] = {
        var result: [(Int, Int, String)] = [(0, 128, "file header")]
        var offset = 128
        for (count, name) in [(16, "consensus section start"), (16 + 100, "consensus chunk"), (16, "service section start"),
                              (16 + 4096, "service chunk 1"), (16 + 200, "service chunk 2"), (32, "trailer")] {
            result.append((offset, count, name))
            offset += count
        }
        return result
    }()

    /// Writes an older good snapshot and a newer one with the shape `regions` describes.
    static func writeTwo<S: Storage>(_ archive: SnapshotArchive<S>) throws -> (older: SnapshotEntry, newer: SnapshotEntry, olderStates: SnapshotStates) {
        let olderStates = SnapshotStates.make(seed: 21, serviceBytes: 5000)
        let older = try takeSnapshot(archive, testHeader(position: 1024), olderStates)
        let newer = try takeSnapshot(archive, testHeader(position: 2048), SnapshotStates.make(seed: 22, serviceBytes: 4096 + 200, consensusBytes: 100))
        return (older, newer, olderStates)
    }

    /// Flips bits across every region of the newer snapshot, one at a time; each is caught with the
    /// region's start as the offset, and the older snapshot is loaded instead. On the simulated disk
    /// every 5th byte is tried, on the real one a few per region.
    @Test(arguments: StorageKind.allCases)
    func bitFlipsInEveryRegionAreFoundWithFileAndOffset(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let (older, newer, olderStates) = try Self.writeTwo(archive)
            #expect(Int64(Self.regions.last!.start + Self.regions.last!.count) == newer.lengthBytes, "regions cover the file")
            for region in Self.regions {
                let offsets = kind == .simulated
                    ? Array(stride(from: region.start, to: region.start + region.count, by: 5)) + [region.start + region.count - 1]
                    : [region.start, region.start + 4, region.start + 9, region.start + region.count / 2, region.start + region.count - 1]
                for offset in offsets {
                    let bit = offset % 8
                    place.flipBit(in: newer.fileName, at: offset, bit: bit)
                    defer { place.flipBit(in: newer.fileName, at: offset, bit: bit) }
                    let problem = try #require(archive.verify(newer), "a flip at \(offset) (\(region.name)) went unnoticed")
                    #expect(problem.file.hasSuffix(newer.fileName))
                    #expect(problem.offsetBytes == Int64(region.start), "flip at \(offset) in \(region.name): reported \(problem)")
                    #expect(problem.kind == .corrupt || region.name == "file header", "\(problem)")
                }
            }
            // One flip, then a load: the older snapshot is used and the newer one reported.
            place.flipBit(in: newer.fileName, at: Self.regions[4].start + 16 + 1000)
            let loaded = try #require(try loadNewest(archive))
            #expect(loaded.entry == older)
            #expect(loaded.states == olderStates)
            #expect(loaded.rejected.count == 1)
            #expect(loaded.rejected.first?.offsetBytes == Int64(Self.regions[4].start))
            #expect(archive.rejectedSnapshots == loaded.rejected)
            #expect(loaded.rejected.first?.description.contains("fails its CRC") == true, "\(loaded.rejected)")
        }
    }

    @Test(arguments: StorageKind.allCases)
    func unknownFormatVersionNamesFileVersionAndWhatIsSupported(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let (older, newer, _) = try Self.writeTwo(archive)
            // A header as a future build would write it: version 7, with a valid CRC.
            var header = Array(place.contents(of: newer.fileName)[0..<128])
            header[8] = 7
            let crc = header.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<124])) }
            withUnsafeBytes(of: crc.littleEndian) { for index in 0..<4 { header[124 + index] = $0[index] } }
            place.overwrite(newer.fileName, at: 0, with: header)
            let problem = try #require(archive.verify(newer))
            #expect(problem.kind == .unsupportedVersion(found: 7, supported: 1))
            #expect(problem.description.contains(newer.fileName) && problem.description.contains("version 7")
                    && problem.description.contains("only version 1"), "\(problem)")
            let load = try #require(archive.newestValidSnapshot())
            #expect(load.entry == older)
            #expect(load.rejected == [problem])
        }
    }

    @Test(arguments: StorageKind.allCases)
    func truncatedOrExtendedFilesAreRejected(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let (_, newer, _) = try Self.writeTwo(archive)
            try place.append([0xAB], to: newer.fileName)
            let extra = try #require(archive.verify(newer))
            #expect(extra.offsetBytes == newer.lengthBytes && extra.description.contains("after the trailer"), "\(extra)")
        }
    }

    @Test func aFileThatDisagreesWithTheCatalogIsRejected() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let (older, newer, _) = try Self.writeTwo(archive)
            // Put the older file under the newer one's name: every CRC holds, but it is not what was listed.
            let storage = try makeStorage()
            try storage.deleteFile(newer.fileName)
            let source = try storage.openFile(older.fileName, create: false)
            let copy = try storage.openFile(newer.fileName, create: true)
            try storage.write(copy, at: 0, bytes: try storage.read(source, at: 0, count: Int(older.lengthBytes)))
            storage.closeFile(source)
            storage.closeFile(copy)
            let problem = try #require(archive.verify(newer))
            #expect(problem.kind == .mismatch && problem.description.contains("holds snapshot \(older.id)"), "\(problem)")
        }
    }

    @Test func aReaderNoticesAChangeAfterVerification() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let (_, newer, _) = try Self.writeTwo(archive)
            let load = try #require(archive.newestValidSnapshot())
            #expect(load.entry == newer)
            place.flipBit(in: newer.fileName, at: Self.regions[5].start + 20)
            let reader = try #require(try load.reader(for: .serviceState))
            var buffer = [UInt8](repeating: 0, count: 10_000)
            #expect(throws: ArchiveError.self) { _ = try buffer.withUnsafeMutableBytes { try reader.readBytes(into: $0) } }
        }
    }
}
