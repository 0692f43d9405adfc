import KeelArchive
import KeelCore
import Testing

/// The catalog: two slots, term history, retention, and the reconciliation done when opening.
@Suite struct CatalogTests {
    static let configuration = ArchiveConfiguration(chunkPayloadBytes: 4096)

    @Test(arguments: StorageKind.allCases)
    func aDamagedNewestSlotFallsBackToTheOtherWithAReport(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            var entries: [SnapshotEntry] = []
            do {
                let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
                entries.append(try takeSnapshot(archive, testHeader(position: 100), SnapshotStates.make(seed: 1, serviceBytes: 10)))
                try archive.recordTerm(Term(1), startPosition: LogPosition(0), timestamp: ClusterTime(rawValue: 5))
                entries.append(try takeSnapshot(archive, testHeader(position: 200), SnapshotStates.make(seed: 2, serviceBytes: 10)))
            }
            // Three commits: slot 1 (seq 1), slot 0 (seq 2), slot 1 (seq 3, current). Damage the current slot's body.
            place.flipBit(in: "catalog.1", at: 64 + 130)
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let report = archive.repairs.joined(separator: "\n")
            #expect(report.contains("catalog.1 at offset 64: body CRC mismatch"), "\(report)")
            // The older slot lacked the second snapshot; its file was complete, so it is listed again.
            #expect(report.contains("listed snapshot \(entries[1].id)"), "\(report)")
            #expect(archive.snapshots() == entries)
            #expect(archive.termHistory == [TermHistoryEntry(term: Term(1), startPosition: LogPosition(0), timestamp: ClusterTime(rawValue: 5))])
            // And the next write lands in the damaged slot, healing it.
            try archive.recordTerm(Term(2), startPosition: LogPosition(300), timestamp: ClusterTime(rawValue: 6))
            let again = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            #expect(again.repairs.isEmpty, "\(again.repairs)")
            #expect(again.termHistory.map(\.term) == [Term(1), Term(2)])
        }
    }

    @Test(arguments: StorageKind.allCases)
    func bothSlotsDamagedIsRefusedNamingTheFiles(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            do {
                let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
                try archive.recordTerm(Term(1), startPosition: LogPosition(0), timestamp: .zero)
                try archive.recordTerm(Term(2), startPosition: LogPosition(10), timestamp: .zero)
            }
            place.flipBit(in: "catalog.0", at: 3)
            place.flipBit(in: "catalog.1", at: 20)
            let error = #expect(throws: ArchiveError.self) { try SnapshotArchive(storage: try makeStorage()) }
            guard case .badCatalog(let problem) = error else { Issue.record("expected badCatalog, got \(String(describing: error))"); return }
            #expect(problem.description.contains("catalog.0 at offset 0") || problem.description.contains("catalog.0"), "\(problem)")
            #expect(problem.description.contains("catalog.1") && problem.description.contains("both catalog slots"), "\(problem)")
        }
    }

    @Test func aTornFirstCatalogWriteStartsEmpty() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            _ = try SnapshotArchive(storage: try makeStorage())
            let storage = try makeStorage()
            let slot = try storage.openFile("catalog.1", create: false)
            try storage.write(slot, at: 0, bytes: [0x4B, 0x45, 0x45, 0x4C, 0x43, 0x41])  // the start of a header, then nothing
            storage.closeFile(slot)
            let archive = try SnapshotArchive(storage: try makeStorage())
            #expect(archive.snapshots().isEmpty)
            #expect(archive.repairs.count == 1 && archive.repairs[0].contains("first write was torn"), "\(archive.repairs)")
        }
    }

    @Test(arguments: StorageKind.allCases)
    func anUnknownCatalogVersionIsRefused(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            do {
                let archive = try SnapshotArchive(storage: try makeStorage())
                try archive.recordTerm(Term(1), startPosition: LogPosition(0), timestamp: .zero)
            }
            var header = Array(place.contents(of: "catalog.1")[0..<64])
            header[8] = 9
            let crc = header.withUnsafeBytes { crc32cForTests(UnsafeRawBufferPointer(rebasing: $0[0..<60])) }
            withUnsafeBytes(of: crc.littleEndian) { for index in 0..<4 { header[60 + index] = $0[index] } }
            place.overwrite("catalog.1", at: 0, with: header)
            let error = #expect(throws: ArchiveError.self) { try SnapshotArchive(storage: try makeStorage()) }
            #expect(error?.description.contains("catalog.1") == true && error?.description.contains("catalog format version 9; this build reads only version 1") == true,
                    "\(String(describing: error))")
        }
    }

    @Test func termHistoryDropsTruncatedTermsAndRefusesGoingBack() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage())
            try archive.recordTerm(Term(1), startPosition: LogPosition(0), timestamp: ClusterTime(rawValue: 1))
            try archive.recordTerm(Term(2), startPosition: LogPosition(640), timestamp: ClusterTime(rawValue: 2))
            try archive.recordTerm(Term(3), startPosition: LogPosition(960), timestamp: ClusterTime(rawValue: 3))
            try archive.recordTerm(Term(3), startPosition: LogPosition(960), timestamp: ClusterTime(rawValue: 3))  // idempotent
            // Term 4 starts at 800: term 3's entries (from 960) were truncated away.
            try archive.recordTerm(Term(4), startPosition: LogPosition(800), timestamp: ClusterTime(rawValue: 4))
            #expect(archive.termHistory.map(\.term) == [Term(1), Term(2), Term(4)])
            #expect(throws: ArchiveError.self, "terms only grow") {
                try archive.recordTerm(Term(2), startPosition: LogPosition(900), timestamp: .zero)
            }
            let reopened = try SnapshotArchive(storage: try makeStorage())
            #expect(reopened.termHistory == archive.termHistory)
            #expect(reopened.termHistory.last == TermHistoryEntry(term: Term(4), startPosition: LogPosition(800), timestamp: ClusterTime(rawValue: 4)))
        }
    }

    @Test(arguments: StorageKind.allCases)
    func removingAllButTheNewestKeepsTheNewest(_ kind: StorageKind) throws {
        let place = ArchivePlace(kind)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            var entries: [SnapshotEntry] = []
            // Positions out of id order: "newest" is by position.
            for (index, position) in [300, 100, 500, 400].enumerated() {
                entries.append(try takeSnapshot(archive, testHeader(position: Int64(position)), SnapshotStates.make(seed: UInt64(index), serviceBytes: 5000)))
            }
            #expect(archive.snapshots().map(\.position.rawValue) == [100, 300, 400, 500])
            let removed = try archive.removeSnapshots(keepingNewest: 2)
            #expect(removed.map(\.position.rawValue) == [100, 300])
            #expect(archive.snapshots().map(\.position.rawValue) == [400, 500])
            #expect(try makeStorage().listFiles() == ["catalog.0", "catalog.1", entries[2].fileName, entries[3].fileName])
            #expect(try archive.removeSnapshots(keepingNewest: 2).isEmpty)
            let reopened = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            #expect(reopened.snapshots().map(\.position.rawValue) == [400, 500])
            #expect(reopened.repairs.isEmpty, "\(reopened.repairs)")
            // Ids are never reused after removal.
            let next = try takeSnapshot(reopened, testHeader(position: 600), SnapshotStates.make(seed: 9, serviceBytes: 1))
            #expect(next.id > entries.map(\.id).max()!)
        }
    }

    @Test func openingRemovesTemporaryFilesAndDropsEntriesWithoutFiles() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            let entry: SnapshotEntry
            do {
                let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
                entry = try takeSnapshot(archive, testHeader(position: 64), SnapshotStates.make(seed: 1, serviceBytes: 9000))
                _ = try takeSnapshot(archive, testHeader(position: 128), SnapshotStates.make(seed: 2, serviceBytes: 9000))
            }
            let storage = try makeStorage()
            // A crash mid-write leaves a temporary file; a lost file leaves a dangling entry; junk in a .snap name is removed.
            let temporary = try storage.openFile("snapshot-0000000000000009.tmp", create: true)
            try storage.write(temporary, at: 0, bytes: patternBytes(count: 300, seed: 3))
            storage.closeFile(temporary)
            try storage.deleteFile("snapshot-0000000000000002.snap")
            let junk = try storage.openFile("snapshot-000000000000000a.snap", create: true)
            try storage.write(junk, at: 0, bytes: patternBytes(count: 500, seed: 4))
            storage.closeFile(junk)

            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            #expect(archive.snapshots() == [entry])
            #expect(try makeStorage().listFiles() == ["catalog.0", "catalog.1", entry.fileName])
            #expect(archive.repairs.count == 3, "\(archive.repairs)")
            let next = try takeSnapshot(archive, testHeader(position: 256), SnapshotStates.make(seed: 5, serviceBytes: 10))
            #expect(next.id == 11, "ids continue past every id seen on disk")
        }
    }

    @Test func shippingReadsRawBytesByOffset() throws {
        let place = ArchivePlace(.simulated)
        try place.run { makeStorage in
            let archive = try SnapshotArchive(storage: try makeStorage(), configuration: Self.configuration)
            let entry = try takeSnapshot(archive, testHeader(position: 64), SnapshotStates.make(seed: 1, serviceBytes: 20_000))
            var received: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 3000)
            while true {
                let count = try buffer.withUnsafeMutableBytes { try archive.readChunks(of: entry, from: Int64(received.count), into: $0) }
                if count == 0 { break }
                received.append(contentsOf: buffer[0..<count])
            }
            #expect(received == place.contents(of: entry.fileName))
            #expect(throws: ArchiveError.self) { _ = try buffer.withUnsafeMutableBytes { try archive.readChunks(of: entry, from: entry.lengthBytes + 1, into: $0) } }
        }
    }
}
