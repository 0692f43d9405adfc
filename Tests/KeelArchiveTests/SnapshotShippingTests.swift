import KeelArchive
import KeelCore
import KeelService
import Testing

/// Shipping a snapshot between two archives: sender reads raw bytes, receiver writes and checks
/// them, the receiving archive adopts the file under an id of its own.
@Suite struct SnapshotShippingTests {
    static let smallChunks = ArchiveConfiguration(chunkPayloadBytes: 4096)
    static let clusterID: UInt64 = 0xC1A5_7E12

    /// Sends `entry` from `source` in pieces of up to `piece` bytes, breaking off after `breakAfter`
    /// bytes (if given) and resuming from the receiver's `receivedBytes`, as after a lost connection.
    func ship<S: Storage, R: Storage>(
        _ source: SnapshotFileSource<S>, into receiving: SnapshotReceiving<R>, piece: Int, corruptAt: Int64? = nil, untilBytes: Int64? = nil
    ) throws {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: piece, alignment: 16)
        defer { buffer.deallocate() }
        while !receiving.isComplete && receiving.receivedBytes < (untilBytes ?? .max) {
            let offset = receiving.receivedBytes
            let count = try source.read(from: offset, into: buffer)
            if let corruptAt, corruptAt >= offset && corruptAt < offset + Int64(count) { buffer[Int(corruptAt - offset)] ^= 0x10 }
            try receiving.append(UnsafeRawBufferPointer(rebasing: buffer[0..<count]), at: offset)
        }
    }

    @Test(arguments: StorageKind.allCases)
    func shippedSnapshotIsAdoptedUnderTheReceiversIDAndLoadsTheSameBytes(_ kind: StorageKind) throws {
        let sender = ArchivePlace(kind, seed: 1)
        let receiver = ArchivePlace(kind, seed: 2)
        let states = SnapshotStates.make(seed: 5, serviceBytes: 100_000)
        try sender.run { makeSenderStorage in
            try receiver.run { makeReceiverStorage in
                let senderArchive = try SnapshotArchive(storage: try makeSenderStorage(), configuration: Self.smallChunks)
                // The sender's ids run ahead of the receiver's: the shipped file must be renumbered.
                for position in [4096, 8192, 12288] as [Int64] { try takeSnapshot(senderArchive, testHeader(position: position), SnapshotStates.make(seed: UInt64(position), serviceBytes: 5000)) }
                let entry = try takeSnapshot(senderArchive, testHeader(position: 65536, term: 7), states)
                #expect(entry.id == 4)
                let receiverArchive = try SnapshotArchive(storage: try makeReceiverStorage(), configuration: Self.smallChunks)
                let own = try takeSnapshot(receiverArchive, testHeader(position: 4096), SnapshotStates.make(seed: 9, serviceBytes: 5000))
                #expect(own.id == 1)

                let source = try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry)
                let receiving = try SnapshotReceiving(storage: try makeReceiverStorage(), offer: SnapshotOffer(entry), clusterID: Self.clusterID)
                // Odd piece sizes so chunk boundaries fall anywhere, the trailer's start included.
                try ship(source, into: receiving, piece: 3001)
                let name = try receiving.finish()
                let installed = try receiverArchive.installReceived(name)
                #expect(installed.id == 2, "the receiver's next id, not the sender's 4")
                #expect(installed.position == entry.position && installed.term == entry.term && installed.lengthBytes == entry.lengthBytes)
                // The header ends with its own CRC, so the CRC over it is the same for every valid
                // header (the CRC residue): the whole-file CRC survives renumbering unchanged.
                #expect(installed.wholeCRC == entry.wholeCRC)
                #expect(try readHeaderID(receiverArchive, installed) == 2, "the file's header names the receiver's id")
                #expect(receiverArchive.snapshots() == [own, installed])
                let loaded = try #require(try loadNewest(receiverArchive))
                #expect(loaded.entry == installed)
                #expect(loaded.states == states, "the shipped state reads back exactly")
                #expect(loaded.rejected.isEmpty)
                #expect(try receiverArchive.storage.listFiles().allSatisfy { !$0.hasSuffix(".part") }, "the temporary name is gone")
            }
            // A new process on the receiver finds the installed snapshot, needing no repair.
            let reopened = try SnapshotArchive(storage: try receiver.makeStorageForTests(), configuration: Self.smallChunks)
            #expect(reopened.repairs.isEmpty, "\(reopened.repairs)")
            #expect(reopened.snapshots().map(\.id) == [1, 2])
            #expect(reopened.verify(reopened.snapshots()[1]) == nil)
        }
    }

    @Test(arguments: StorageKind.allCases)
    func aBrokenTransferResumesAtTheReceivedOffset(_ kind: StorageKind) throws {
        let sender = ArchivePlace(kind, seed: 3)
        let receiver = ArchivePlace(kind, seed: 4)
        let states = SnapshotStates.make(seed: 6, serviceBytes: 50_000)
        try sender.run { makeSenderStorage in
            try receiver.run { makeReceiverStorage in
                let senderArchive = try SnapshotArchive(storage: try makeSenderStorage(), configuration: Self.smallChunks)
                let entry = try takeSnapshot(senderArchive, testHeader(position: 8192), states)
                let receiverArchive = try SnapshotArchive(storage: try makeReceiverStorage(), configuration: Self.smallChunks)
                let receiving = try SnapshotReceiving(storage: try makeReceiverStorage(), offer: SnapshotOffer(entry), clusterID: Self.clusterID)
                // First connection: 20,000 bytes, then it breaks.
                do {
                    let source = try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry)
                    var buffer = [UInt8](repeating: 0, count: 20_000)
                    let count = try buffer.withUnsafeMutableBytes { try source.read(from: 0, into: $0) }
                    try buffer.withUnsafeBytes { try receiving.append(UnsafeRawBufferPointer(rebasing: $0[0..<count]), at: 0) }
                }
                #expect(receiving.receivedBytes == 20_000)
                // A chunk at the wrong offset is refused and changes nothing.
                _ = try [UInt8](repeating: 1, count: 10).withUnsafeBytes { bytes in
                    #expect(throws: ArchiveError.self) { try receiving.append(bytes, at: 30_000) }
                }
                #expect(receiving.receivedBytes == 20_000)
                // The second connection resumes where the receiver says.
                let source = try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry)
                try ship(source, into: receiving, piece: 8192)
                let installed = try receiverArchive.installReceived(try receiving.finish())
                let loaded = try #require(try loadNewest(receiverArchive))
                #expect(loaded.entry == installed && loaded.states == states)
            }
        }
    }

    @Test(arguments: StorageKind.allCases)
    func damagedBytesOrAnotherClusterAreRefusedAndLeaveNothing(_ kind: StorageKind) throws {
        let sender = ArchivePlace(kind, seed: 5)
        let receiver = ArchivePlace(kind, seed: 6)
        try sender.run { makeSenderStorage in
            try receiver.run { makeReceiverStorage in
                let senderArchive = try SnapshotArchive(storage: try makeSenderStorage(), configuration: Self.smallChunks)
                let entry = try takeSnapshot(senderArchive, testHeader(position: 8192), SnapshotStates.make(seed: 7, serviceBytes: 30_000))
                let receiverArchive = try SnapshotArchive(storage: try makeReceiverStorage(), configuration: Self.smallChunks)
                // A byte flipped in transit (past the wire's own CRC): the whole CRC catches it.
                let damaged = try SnapshotReceiving(storage: try makeReceiverStorage(), offer: SnapshotOffer(entry), clusterID: Self.clusterID)
                try ship(try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry), into: damaged, piece: 5000, corruptAt: 17_000)
                #expect(throws: ArchiveError.self) { _ = try damaged.finish() }
                // A snapshot of another cluster.
                let foreign = try SnapshotReceiving(storage: try makeReceiverStorage(), offer: SnapshotOffer(entry), clusterID: 42)
                try ship(try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry), into: foreign, piece: 5000)
                do {
                    _ = try foreign.finish()
                    Issue.record("a snapshot of another cluster was accepted")
                } catch {
                    #expect("\(error)".contains("cluster 3248848402"), "\(error)")
                }
                // An offer whose length differs from the file.
                var short = SnapshotOffer(entry)
                short.totalBytes -= 1
                let truncated = try SnapshotReceiving(storage: try makeReceiverStorage(), offer: short, clusterID: Self.clusterID)
                #expect(throws: ArchiveError.self, "a chunk past the offered length") {
                    try ship(try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry), into: truncated, piece: 5000)
                }
                truncated.abandon()
                var long = SnapshotOffer(entry)
                long.totalBytes += 7
                let extended = try SnapshotReceiving(storage: try makeReceiverStorage(), offer: long, clusterID: Self.clusterID)
                try ship(try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry), into: extended, piece: 5000, untilBytes: entry.lengthBytes)
                #expect(throws: ArchiveError.self, "incomplete") { _ = try extended.finish() }
                #expect(receiverArchive.snapshots().isEmpty)
                #expect(try receiverArchive.storage.listFiles().filter { $0.hasPrefix("snapshot-") || $0.hasSuffix(".part") }.isEmpty)
            }
        }
    }

    @Test(arguments: StorageKind.allCases)
    func anUnfinishedTransferIsRemovedWhenTheArchiveOpens(_ kind: StorageKind) throws {
        let sender = ArchivePlace(kind, seed: 7)
        let receiver = ArchivePlace(kind, seed: 8)
        try sender.run { makeSenderStorage in
            try receiver.run { makeReceiverStorage in
                let senderArchive = try SnapshotArchive(storage: try makeSenderStorage(), configuration: Self.smallChunks)
                let entry = try takeSnapshot(senderArchive, testHeader(position: 8192), SnapshotStates.make(seed: 8, serviceBytes: 30_000))
                let receiving = try SnapshotReceiving(storage: try makeReceiverStorage(), offer: SnapshotOffer(entry), clusterID: Self.clusterID)
                var buffer = [UInt8](repeating: 0, count: 9000)
                let source = try SnapshotFileSource(storage: try makeSenderStorage(), entry: entry)
                let count = try buffer.withUnsafeMutableBytes { try source.read(from: 0, into: $0) }
                try buffer.withUnsafeBytes { try receiving.append(UnsafeRawBufferPointer(rebasing: $0[0..<count]), at: 0) }
                let name = receiving.fileName
                let archive = try SnapshotArchive(storage: try makeReceiverStorage(), configuration: Self.smallChunks)
                #expect(archive.repairs.contains { $0.contains(name) }, "\(archive.repairs)")
                #expect(try !archive.storage.listFiles().contains(name))
                #expect(throws: ArchiveError.self) { _ = try archive.installReceived("snapshot-0000000000000001.snap") }
            }
        }
    }
}

/// The snapshot id in an archived file's header (bytes 16..<24).
func readHeaderID<S: Storage>(_ archive: SnapshotArchive<S>, _ entry: SnapshotEntry) throws -> Int64 {
    let file = try archive.storage.openFile(entry.fileName, create: false)
    defer { archive.storage.closeFile(file) }
    let bytes = try archive.storage.read(file, at: 16, count: 8)
    return bytes.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
}

extension ArchivePlace {
    /// One more storage on this place, outside `run`.
    func makeStorageForTests() throws -> AnyStorage {
        var made: AnyStorage?
        try run { makeStorage in made = try makeStorage() }
        return made!
    }
}
