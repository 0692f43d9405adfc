import KeelCore
import KeelWire

// Shipping a snapshot to another member (docs/snapshot-format.md, "Shipping"): the sender reads a
// listed snapshot's raw bytes by offset; the receiver writes them under a temporary name, checking
// them as they come, and the receiving archive adopts the complete file under an id of its own.
// The sending and receiving halves run on the consensus agent's thread with a `Storage` of their
// own over the archive directory; only `SnapshotArchive.installReceived` touches the catalog, on
// the archive owner's thread.

/// What a sender says of the snapshot it is about to send (carried by the wire's snapshot offer).
public struct SnapshotOffer: Sendable, Equatable, CustomStringConvertible {
    /// The snapshot's id in the sender's archive (the receiver gives it one of its own).
    public var sourceID: Int64
    public var position: LogPosition
    public var term: Term
    /// The file's whole length, trailer included.
    public var totalBytes: Int64
    /// CRC32C over the file's bytes before its trailer, as the sender's catalog recorded it.
    public var wholeCRC: UInt32

    public init(sourceID: Int64, position: LogPosition, term: Term, totalBytes: Int64, wholeCRC: UInt32) {
        self.sourceID = sourceID
        self.position = position
        self.term = term
        self.totalBytes = totalBytes
        self.wholeCRC = wholeCRC
    }

    /// The offer for a listed snapshot.
    public init(_ entry: SnapshotEntry) {
        self.init(sourceID: entry.id, position: entry.position, term: entry.term, totalBytes: entry.lengthBytes, wholeCRC: entry.wholeCRC)
    }

    public var description: String {
        "snapshot \(sourceID) at position \(position.rawValue) in term \(term.rawValue) (\(totalBytes) bytes)"
    }
}

/// Reads a listed snapshot's raw bytes by offset (the sender's half), through a storage over the
/// archive directory owned by the caller's thread. The file stays open until `close()`; on Linux
/// an open file stays readable even if retention deletes it meanwhile.
public final class SnapshotFileSource<S: Storage> {
    public let storage: S
    public let entry: SnapshotEntry
    private var file: FileID?

    /// Opens `entry`'s file; throws when it is gone.
    public init(storage: S, entry: SnapshotEntry) throws(ArchiveError) {
        self.storage = storage
        self.entry = entry
        file = try storageCall { () throws(IOError) in try storage.openFile(entry.fileName, create: false) }
    }

    deinit { close() }

    /// Reads up to `buffer.count` bytes from `offset` (0 at the end).
    public func read(from offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        guard let file else { throw .invalidRequest("snapshot \(entry.id)'s source is closed") }
        guard offset >= 0 && offset <= entry.lengthBytes else {
            throw .invalidRequest("offset \(offset) outside snapshot \(entry.id) of \(entry.lengthBytes) bytes")
        }
        let wanted = Int(min(Int64(buffer.count), entry.lengthBytes - offset))
        let count = try storageCall { () throws(IOError) in
            try readFully(storage, file, at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<wanted]))
        }
        guard count == wanted else {
            throw .badSnapshot(SnapshotProblem(
                file: "\(storage.location)/\(entry.fileName)", offsetBytes: offset + Int64(count), kind: .corrupt,
                reason: "the file ends before its listed length of \(entry.lengthBytes) bytes"))
        }
        return count
    }

    public func close() {
        if let file { storage.closeFile(file) }
        file = nil
    }
}

/// A snapshot arriving from another member (the receiver's half): its bytes are written in order
/// under `incoming-<source id>.part` and checked as they come (each wire chunk has its own CRC,
/// checked by the wire decoder; the whole-file CRC is computed here on the way), so a transfer
/// broken off resumes at `receivedBytes`. `finish()` checks the length, the whole CRC against the
/// offer, and the header (cluster id, position, term), then fdatasyncs the file. An archive opened
/// after a crash removes a leftover `.part` file (a transfer does not survive the process).
public final class SnapshotReceiving<S: Storage> {
    public let storage: S
    public let offer: SnapshotOffer
    public let clusterID: UInt64
    /// The temporary file's name in the archive directory.
    public let fileName: String
    /// Bytes written so far, from offset 0: the offset the next chunk must start at.
    public private(set) var receivedBytes: Int64 = 0
    private var file: FileID?
    /// CRC32C of the bytes received so far, up to the trailer's start.
    private var wholeCRC: UInt32 = 0
    private var finished = false

    /// Creates (replacing any leftover) the temporary file for `offer`.
    public init(storage: S, offer: SnapshotOffer, clusterID: UInt64) throws(ArchiveError) {
        let minimum = Int64(SnapshotFormat.headerBytes + SnapshotFormat.trailerRecordBytes)
        guard offer.totalBytes >= minimum, offer.position.rawValue >= 0, offer.term.rawValue >= 0 else {
            throw .invalidRequest("\(offer): a snapshot file has at least \(minimum) bytes and a non-negative position and term")
        }
        self.storage = storage
        self.offer = offer
        self.clusterID = clusterID
        fileName = SnapshotFormat.incomingName(sourceID: offer.sourceID)
        let name = fileName
        do { try storage.deleteFile(name) } catch where error.errno == Errno.noEntry {} catch { throw .storage(error) }
        file = try storageCall { () throws(IOError) in try storage.openFile(name, create: true) }
    }

    deinit { if let file { storage.closeFile(file) } }

    private var trailerStart: Int64 { offer.totalBytes - Int64(SnapshotFormat.trailerRecordBytes) }

    /// Writes `chunk`, which must start at `receivedBytes` and end within the offer's length.
    public func append(_ chunk: UnsafeRawBufferPointer, at offset: Int64) throws(ArchiveError) {
        guard let file, !finished else { throw .invalidRequest("the transfer of \(offer) is closed") }
        guard offset == receivedBytes, Int64(chunk.count) <= offer.totalBytes - offset else {
            throw .invalidRequest("chunk of \(chunk.count) bytes at \(offset); expected offset \(receivedBytes) of \(offer.totalBytes)")
        }
        guard !chunk.isEmpty else { return }
        try storageCall { () throws(IOError) in try storage.write(file, at: offset, chunk) }
        let checked = Int(max(0, min(Int64(chunk.count), trailerStart - offset)))
        if checked > 0 { wholeCRC = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: chunk[0..<checked]), continuing: wholeCRC) }
        receivedBytes += Int64(chunk.count)
    }

    /// True once every byte arrived.
    public var isComplete: Bool { receivedBytes == offer.totalBytes }

    /// Checks the complete file against the offer and syncs it; returns its name for
    /// `SnapshotArchive.installReceived`. On a failure the file is removed.
    public func finish() throws(ArchiveError) -> String {
        guard let file, !finished else { throw .invalidRequest("the transfer of \(offer) is closed") }
        let shown = "\(storage.location)/\(fileName)"
        do throws(ArchiveError) {
            guard isComplete else { throw ArchiveError.invalidRequest("\(offer) is incomplete: \(receivedBytes) bytes received") }
            guard wholeCRC == offer.wholeCRC else {
                throw ArchiveError.badSnapshot(SnapshotProblem(
                    file: shown, offsetBytes: 0, kind: .corrupt,
                    reason: "received bytes have whole CRC 0x\(String(wholeCRC, radix: 16)); the sender's catalog says 0x\(String(offer.wholeCRC, radix: 16))"))
            }
            let header = UnsafeMutableRawBufferPointer.allocate(byteCount: SnapshotFormat.headerBytes, alignment: 16)
            defer { header.deallocate() }
            let count = try storageCall { () throws(IOError) in try readFully(storage, file, at: 0, into: header) }
            let decoded = SnapshotFileHeader.decode(UnsafeRawBufferPointer(rebasing: header[0..<count]))
            guard case .valid(let fileHeader) = decoded else {
                throw ArchiveError.badSnapshot(SnapshotProblem(file: shown, offsetBytes: 0, kind: .corrupt, reason: "bad header: \(decoded)"))
            }
            let got = fileHeader.header
            guard got.clusterID == clusterID, got.position == offer.position, got.term == offer.term else {
                throw ArchiveError.badSnapshot(SnapshotProblem(
                    file: shown, offsetBytes: 0, kind: .mismatch,
                    reason: "the header says cluster \(got.clusterID), position \(got.position.rawValue), term \(got.term.rawValue); expected cluster \(clusterID) and \(offer)"))
            }
            try storageCall { () throws(IOError) in try storage.datasync(file) }
        } catch {
            abandon()
            throw error
        }
        storage.closeFile(file)
        self.file = nil
        finished = true
        return fileName
    }

    /// Closes and removes the temporary file (best effort).
    public func abandon() {
        if let file { storage.closeFile(file) }
        file = nil
        finished = true
        try? storage.deleteFile(fileName)
    }
}

extension SnapshotFormat {
    /// The name a snapshot arriving from another member is received under.
    static func incomingName(sourceID: Int64) -> String { "incoming-\(hex16(sourceID)).part" }
    /// True for a name `incomingName` makes.
    static func isIncomingName(_ name: String) -> Bool { name.hasPrefix("incoming-") && name.hasSuffix(".part") }
}

extension SnapshotArchive {
    /// Adopts a complete received file (`SnapshotReceiving.finish()`'s name) as a snapshot of this
    /// archive, by the rules of a locally written one: it gets this archive's next id (the header's
    /// id field and CRC, and the trailer's whole CRC, are rewritten to match — the whole CRC by CRC
    /// arithmetic, without reading the file), is fdatasynced, fully verified, renamed to its final
    /// name, the directory fsynced, and listed in the catalog. On any failure the file is removed and
    /// the archive is as before. Returns the new entry.
    public func installReceived(_ name: String) throws(ArchiveError) -> SnapshotEntry {
        guard SnapshotFormat.isIncomingName(name) else { throw .invalidRequest("\(name) is not a received snapshot's name") }
        let id = nextSnapshotID
        nextSnapshotID += 1
        let shown = "\(storage.location)/\(name)"
        var renamed = false
        let finalName = SnapshotFormat.fileName(id: id)
        do throws(ArchiveError) {
            let file = try storageCall { () throws(IOError) in try storage.openFile(name, create: false) }
            defer { storage.closeFile(file) }
            try renumber(file, to: id, shown: shown)
            let scan = try SnapshotScanner(storage: storage, file: file, fileName: shown).scan()
            guard scan.fileHeader.snapshotID == id else {
                throw ArchiveError.badSnapshot(SnapshotProblem(file: shown, offsetBytes: 16, kind: .mismatch, reason: "renumbering to \(id) did not hold"))
            }
            let header = scan.fileHeader.header
            let entry = SnapshotEntry(
                id: id, position: header.position, term: header.term, timestamp: header.timestamp, serviceVersion: header.serviceVersion,
                memberID: header.memberID, fileName: finalName, lengthBytes: scan.fileLengthBytes, wholeCRC: scan.wholeCRC)
            try storageCall { () throws(IOError) in try storage.renameFile(name, to: finalName) }
            renamed = true
            try storageCall { () throws(IOError) in try storage.syncDirectory() }
            try catalogAdd(entry)
            return entry
        } catch {
            try? storage.deleteFile(renamed ? finalName : name)
            try? storage.syncDirectory()
            throw error
        }
    }

    /// Gives a received file snapshot id `id`: header bytes 16..<24 and its CRC, then the trailer's
    /// whole CRC and record CRC; fdatasyncs. crc(H'‖R) = crc(H‖R) ⊕ (crc(H') ⊕ crc(H))·x^(8|R|).
    private func renumber(_ file: FileID, to id: Int64, shown: String) throws(ArchiveError) {
        let size = try storageCall { () throws(IOError) in try storage.fileSize(file) }
        let trailerStart = size - Int64(SnapshotFormat.trailerRecordBytes)
        guard trailerStart >= Int64(SnapshotFormat.headerBytes) else {
            throw .badSnapshot(SnapshotProblem(file: shown, offsetBytes: 0, kind: .corrupt, reason: "\(size) bytes: shorter than a header and a trailer"))
        }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: SnapshotFormat.headerBytes + SnapshotFormat.trailerRecordBytes, alignment: 16)
        defer { buffer.deallocate() }
        let header = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<SnapshotFormat.headerBytes])
        let trailer = UnsafeMutableRawBufferPointer(rebasing: buffer[SnapshotFormat.headerBytes...])
        let headerRead = try storageCall { () throws(IOError) in try readFully(storage, file, at: 0, into: header) }
        let trailerRead = try storageCall { () throws(IOError) in try readFully(storage, file, at: trailerStart, into: trailer) }
        guard headerRead == header.count, trailerRead == trailer.count else {
            throw .badSnapshot(SnapshotProblem(file: shown, offsetBytes: 0, kind: .corrupt, reason: "short read of header or trailer"))
        }
        guard case .valid(var fileHeader) = SnapshotFileHeader.decode(UnsafeRawBufferPointer(header)) else {
            throw .badSnapshot(SnapshotProblem(file: shown, offsetBytes: 0, kind: .corrupt, reason: "bad header"))
        }
        let oldHeaderCRC = CRC32C.checksum(UnsafeRawBufferPointer(header))
        fileHeader.snapshotID = id
        fileHeader.encode(into: header)
        let newHeaderCRC = CRC32C.checksum(UnsafeRawBufferPointer(header))
        let restBytes = Int(trailerStart) - SnapshotFormat.headerBytes
        let payload = trailer.baseAddress! + SnapshotFormat.recordHeaderBytes
        let oldWhole = UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let newWhole = oldWhole ^ CRC32CCombine.multiply(CRC32CCombine.shift(bytes: restBytes), oldHeaderCRC ^ newHeaderCRC)
        payload.storeBytes(of: newWhole.littleEndian, toByteOffset: 8, as: UInt32.self)
        let recordCRC = SnapshotRecordHeader.crcOf(
            header: UnsafeRawPointer(trailer.baseAddress!),
            payload: UnsafeRawBufferPointer(start: payload, count: SnapshotFormat.trailerPayloadBytes))
        trailer.baseAddress!.storeBytes(of: recordCRC.littleEndian, toByteOffset: 4, as: UInt32.self)
        try storageCall { () throws(IOError) in
            try storage.write(file, at: 0, UnsafeRawBufferPointer(header))
            try storage.write(file, at: trailerStart, UnsafeRawBufferPointer(trailer))
            try storage.datasync(file)
        }
    }
}
