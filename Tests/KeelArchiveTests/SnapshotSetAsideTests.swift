import KeelArchive
import KeelCore
import Testing

/// A snapshot rejected at a restart is set aside: out of the catalog (so retention keeps K snapshots
/// that load), its file renamed for inspection, never loaded or adopted again, and removed once K
/// newer snapshots exist.
@Suite struct SnapshotSetAsideTests {
    static let configuration = ArchiveConfiguration(chunkPayloadBytes: 4096)

    @Test(arguments: StorageKind.allCases)
    func rejectedSnapshotLeavesTheCatalogAndRetentionKeepsKValidOnes(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            var archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let first = try takeSnapshot(archive, testHeader(position: 1024), SnapshotStates.make(seed: 1, serviceBytes: 6000))
            let second = try takeSnapshot(archive, testHeader(position: 2048), SnapshotStates.make(seed: 2, serviceBytes: 6000))
            let third = try takeSnapshot(archive, testHeader(position: 3072), SnapshotStates.make(seed: 3, serviceBytes: 6000))
            place.flipBit(in: third.fileName, at: 128 + 16 + 16 + 40)

            // Without setting aside (the archive's default), the broken one stays listed.
            let plain = try #require(archive.newestValidSnapshot())
            #expect(plain.entry == second)
            plain.close()
            #expect(archive.snapshots() == [first, second, third])

            let load = try #require(archive.newestValidSnapshot(settingAside: true))
            #expect(load.entry == second)
            #expect(load.rejected.count == 1 && load.rejected[0].file.hasSuffix(third.fileName))
            load.close()
            #expect(archive.snapshots() == [first, second])
            #expect(archive.setAsideSnapshots.map(\.entry) == [third])
            let rejectedName = "snapshot-0000000000000003.rejected"
            #expect(archive.setAsideSnapshots.first?.fileName == rejectedName)
            #expect(try archive.rejectedFileNames() == [rejectedName])

            // Reopening ("a restart") neither adopts the set-aside file nor reuses its id.
            archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            #expect(archive.snapshots() == [first, second])
            #expect(archive.repairs.isEmpty, "\(archive.repairs)")
            #expect(archive.newestValidSnapshot(settingAside: true)?.entry == second)
            #expect(archive.rejectedSnapshots.isEmpty)

            // Keeping 2: every kept snapshot is one that loads.
            let fourth = try takeSnapshot(archive, testHeader(position: 4096), SnapshotStates.make(seed: 4, serviceBytes: 6000))
            #expect(fourth.id == 4)
            #expect(try archive.removeSnapshots(keepingNewest: 2) == [first])
            #expect(archive.snapshots() == [second, fourth])
            for entry in archive.snapshots() { #expect(archive.verify(entry) == nil) }
            // The rejected file is kept while an older snapshot is, then goes as that would have.
            #expect(try archive.rejectedFileNames() == [rejectedName])
            let fifth = try takeSnapshot(archive, testHeader(position: 5120), SnapshotStates.make(seed: 5, serviceBytes: 6000))
            #expect(try archive.removeSnapshots(keepingNewest: 2) == [second])
            #expect(archive.snapshots() == [fourth, fifth])
            #expect(try archive.rejectedFileNames().isEmpty)
        }
    }

    /// Every broken snapshot newer than the one loaded is set aside; none that loads is.
    @Test(arguments: StorageKind.allCases)
    func severalBrokenSnapshotsAreAllSetAside(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            var entries: [SnapshotEntry] = []
            for index in 1...4 {
                entries.append(try takeSnapshot(archive, testHeader(position: Int64(index) * 1024), SnapshotStates.make(seed: UInt64(index), serviceBytes: 5000)))
            }
            place.flipBit(in: entries[3].fileName, at: 3)  // header
            place.flipBit(in: entries[2].fileName, at: Int(entries[2].lengthBytes) - 20)  // trailer
            let load = try #require(archive.newestValidSnapshot(settingAside: true))
            #expect(load.entry == entries[1])
            load.close()
            #expect(archive.snapshots() == [entries[0], entries[1]])
            #expect(Set(archive.setAsideSnapshots.map(\.entry.id)) == [3, 4])
            #expect(try archive.rejectedFileNames().count == 2)
            // Nothing left that verifies: everything is set aside and nothing is loaded.
            place.flipBit(in: entries[1].fileName, at: 200)
            place.flipBit(in: entries[0].fileName, at: 200)
            #expect(archive.newestValidSnapshot(settingAside: true) == nil)
            #expect(archive.snapshots().isEmpty)
            #expect(try archive.rejectedFileNames().count == 4)
            // The next snapshot takes a fresh id and, with K = 1, clears every older rejected file.
            let next = try takeSnapshot(archive, testHeader(position: 9000), SnapshotStates.make(seed: 9, serviceBytes: 5000))
            #expect(next.id == 5)
            let another = try takeSnapshot(archive, testHeader(position: 9500), SnapshotStates.make(seed: 10, serviceBytes: 5000))
            #expect(try archive.removeSnapshots(keepingNewest: 1) == [next])
            #expect(archive.snapshots() == [another])
            #expect(try archive.rejectedFileNames().isEmpty)
        }
    }
}
