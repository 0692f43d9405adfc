import KeelCore
import KeelService
import KeelWire

/// One snapshot being written (from `SnapshotArchive.beginSnapshot`). Stream each section's bytes
/// through `beginSection(_:)` then `write(_:)`; they go out in chunks of at most the configured payload,
/// each with its CRC, through one bounded buffer, so a state of any size needs no buffer of that size.
/// `finish()` makes the snapshot durable and lists it in the catalog; until then it exists only under a
/// temporary name that is never loaded.
///
/// Any failure abandons the snapshot (its temporary file is removed) and the error is rethrown; the
/// archive's previous snapshots are untouched. Dropping an unfinished writing abandons it too.
/// Use it on the thread that owns the archive's storage.
///
/// It is the service's `SnapshotWriter`: after `beginSection(.serviceState)`, hand it to
/// `ClusteredService.onTakeSnapshot`.
public final class SnapshotWriting<S: Storage>: SnapshotWriter {
    /// The id the archive gave this snapshot (it names the file).
    public let id: Int64
    public let header: SnapshotHeader
    private let archive: SnapshotArchive<S>
    private let storage: S
    private let temporaryName: String
    private var file: FileID?
    private let chunkPayloadBytes: Int
    /// One record: 16 header bytes, then up to `chunkPayloadBytes` of payload being filled.
    private let chunk: UnsafeMutableRawBufferPointer
    private var payloadFilled = 0
    /// Headers of records written on their own (file header, section starts, large chunks, trailer).
    private let scratch: UnsafeMutableRawBufferPointer
    private var nextFileOffset: Int64 = 0
    private var checksums: SnapshotChecksums
    private var recordIndex: UInt32 = 0
    private var section: SnapshotSection?
    private var sectionsStarted: [SnapshotSection] = []
    private var state = State.open

    private enum State: Equatable {
        case open
        case finished
        case abandoned(String)
    }

    /// Bytes written to the file so far (header and records).
    public var bytesWritten: Int64 { nextFileOffset }

    init(archive: SnapshotArchive<S>, storage: S, id: Int64, header: SnapshotHeader, chunkPayloadBytes: Int) throws(ArchiveError) {
        self.archive = archive
        self.storage = storage
        self.id = id
        self.header = header
        self.chunkPayloadBytes = chunkPayloadBytes
        temporaryName = SnapshotFormat.temporaryName(id: id)
        chunk = .allocate(byteCount: SnapshotFormat.recordHeaderBytes + chunkPayloadBytes, alignment: 4096)
        scratch = .allocate(byteCount: SnapshotFormat.headerBytes, alignment: 16)
        checksums = SnapshotChecksums(chunkBytes: chunkPayloadBytes)
        do {
            // A temporary file of this id can only be left from an attempt that crashed: start afresh.
            let name = temporaryName
            if try storageCall({ () throws(IOError) in try storage.listFiles() }).contains(name) {
                try storageCall { () throws(IOError) in try storage.deleteFile(name) }
            }
            file = try storageCall { () throws(IOError) in try storage.openFile(name, create: true) }
            SnapshotFileHeader(snapshotID: id, header: header, chunkPayloadBytesMax: chunkPayloadBytes).encode(into: scratch)
            let fileHeader = UnsafeRawBufferPointer(rebasing: scratch[0..<SnapshotFormat.headerBytes])
            try emit(fileHeader)
            checksums.add(fileHeader)
        } catch {
            abandon(because: "could not start: \(error)")
            throw error
        }
    }

    deinit {
        if state == .open { abandon(because: "dropped before finish()") }
        chunk.deallocate()
        scratch.deallocate()
    }

    /// Starts `section`; the bytes written after it, until the next section or `finish()`, are its
    /// contents. Each section may be written once, in any order.
    public func beginSection(_ section: SnapshotSection) throws(ArchiveError) {
        try checkOpen()
        guard !sectionsStarted.contains(section) else {
            throw .invalidRequest("the \(section) section of snapshot \(id) was already written")
        }
        try failing { () throws(ArchiveError) in
            try sealChunk()
            try emitRecord(kind: .sectionStart, section: section.rawValue, payload: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        self.section = section
        sectionsStarted.append(section)
    }

    /// `SnapshotWriter`: appends `bytes` to the current section.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        try append(bytes)
    }

    /// Appends `bytes` to the current section (typed-throws form of `write`).
    public func append(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        try checkOpen()
        guard let section else { throw .invalidRequest("write to snapshot \(id) before beginSection") }
        try failing { () throws(ArchiveError) in
            var rest = bytes
            while !rest.isEmpty {
                if payloadFilled == 0 && rest.count >= chunkPayloadBytes {
                    // A whole chunk straight from the caller's bytes: no copy.
                    try emitRecord(kind: .data, section: section.rawValue, payload: UnsafeRawBufferPointer(rebasing: rest[0..<chunkPayloadBytes]))
                    rest = UnsafeRawBufferPointer(rebasing: rest[chunkPayloadBytes...])
                    continue
                }
                let count = min(chunkPayloadBytes - payloadFilled, rest.count)
                (chunk.baseAddress! + SnapshotFormat.recordHeaderBytes + payloadFilled).copyMemory(from: rest.baseAddress!, byteCount: count)
                payloadFilled += count
                rest = UnsafeRawBufferPointer(rebasing: rest[count...])
                if payloadFilled == chunkPayloadBytes { try sealChunk() }
            }
        }
    }

    /// Writes the trailer, fdatasyncs the file, renames it to its final name, fsyncs the directory and
    /// adds it to the catalog (durably). Returns the catalog entry. On error the snapshot is abandoned.
    @discardableResult
    public func finish() throws(ArchiveError) -> SnapshotEntry {
        try checkOpen()
        var renamed = false
        do {
            try sealChunk()
            let trailerOffset = nextFileOffset
            let length = trailerOffset + Int64(SnapshotFormat.trailerRecordBytes)
            let payload = scratch.baseAddress! + 64
            payload.initializeMemory(as: UInt8.self, repeating: 0, count: SnapshotFormat.trailerPayloadBytes)
            payload.storeBytes(of: length.littleEndian, toByteOffset: 0, as: Int64.self)
            let crcBeforeTrailer = checksums.whole
            payload.storeBytes(of: crcBeforeTrailer.littleEndian, toByteOffset: 8, as: UInt32.self)
            try emitRecord(kind: .trailer, section: 0, payload: UnsafeRawBufferPointer(start: payload, count: SnapshotFormat.trailerPayloadBytes))
            let finalName = SnapshotFormat.fileName(id: id)
            let (storage, file, temporaryName) = (storage, file!, temporaryName)
            try storageCall { () throws(IOError) in
                try storage.datasync(file)
                storage.closeFile(file)
            }
            self.file = nil
            try storageCall { () throws(IOError) in try storage.renameFile(temporaryName, to: finalName) }
            renamed = true
            try storageCall { () throws(IOError) in try storage.syncDirectory() }
            let entry = SnapshotEntry(
                id: id, position: header.position, term: header.term, timestamp: header.timestamp,
                serviceVersion: header.serviceVersion, memberID: header.memberID, fileName: finalName,
                lengthBytes: length, wholeCRC: crcBeforeTrailer)
            try archive.catalogAdd(entry)
            state = .finished
            archive.writingEnded(id: id)
            return entry
        } catch {
            abandon(because: "\(error)", finalNameWritten: renamed)
            throw error
        }
    }

    /// Gives the snapshot up: its file is removed (best effort; a crash before that leaves a temporary
    /// file, which the archive removes when it next opens). Nothing reaches the catalog.
    public func abandon() {
        if state == .open { abandon(because: "abandoned by the caller") }
    }

    private func abandon(because reason: String, finalNameWritten: Bool = false) {
        state = .abandoned(reason)
        if let file { storage.closeFile(file) }
        file = nil
        // Best effort: whatever is left is removed when the archive next opens.
        try? storage.deleteFile(finalNameWritten ? SnapshotFormat.fileName(id: id) : temporaryName)
        if finalNameWritten { try? storage.syncDirectory() }
        archive.writingEnded(id: id)
    }

    private func checkOpen() throws(ArchiveError) {
        switch state {
        case .open: return
        case .finished: throw .invalidRequest("snapshot \(id) is already finished")
        case .abandoned(let reason): throw .snapshotAbandoned(id: id, reason: reason)
        }
    }

    /// Runs `body`; on error abandons the snapshot and rethrows.
    private func failing(_ body: () throws(ArchiveError) -> Void) throws(ArchiveError) {
        do { try body() } catch {
            abandon(because: "\(error)")
            throw error
        }
    }

    /// Writes out the chunk being filled, if it holds anything.
    private func sealChunk() throws(ArchiveError) {
        guard payloadFilled > 0, let section else { return }
        let header = chunk.baseAddress!
        let payload = UnsafeRawBufferPointer(start: header + SnapshotFormat.recordHeaderBytes, count: payloadFilled)
        SnapshotRecordHeader.encode(
            into: header, kind: .data, section: section.rawValue, index: recordIndex,
            payloadBytes: payload.count, payloadCRC: CRC32C.checksum(payload), checksums: &checksums)
        try emit(UnsafeRawBufferPointer(rebasing: chunk[0..<(SnapshotFormat.recordHeaderBytes + payloadFilled)]))
        recordIndex &+= 1
        payloadFilled = 0
    }

    /// Writes a record whose header is built in `scratch` and whose payload is elsewhere (gathered).
    private func emitRecord(kind: SnapshotRecordKind, section: UInt16, payload: UnsafeRawBufferPointer) throws(ArchiveError) {
        let header = scratch.baseAddress!
        SnapshotRecordHeader.encode(
            into: header, kind: kind, section: section, index: recordIndex,
            payloadBytes: payload.count, payloadCRC: payload.isEmpty ? 0 : CRC32C.checksum(payload), checksums: &checksums)
        let headerBytes = UnsafeRawBufferPointer(start: header, count: SnapshotFormat.recordHeaderBytes)
        if payload.isEmpty {
            try emit(headerBytes)
        } else {
            try emitGathered(headerBytes, payload)
        }
        recordIndex &+= 1
    }

    private func emit(_ bytes: UnsafeRawBufferPointer) throws(ArchiveError) {
        let (storage, file, offset) = (storage, file!, nextFileOffset)
        try storageCall { () throws(IOError) in try storage.write(file, at: offset, bytes) }
        nextFileOffset += Int64(bytes.count)
    }

    private func emitGathered(_ first: UnsafeRawBufferPointer, _ second: UnsafeRawBufferPointer) throws(ArchiveError) {
        let (storage, file, offset) = (storage, file!, nextFileOffset)
        try storageCall { () throws(IOError) in
            let result: Result<Void, IOError> = withUnsafeTemporaryAllocation(of: IOVector.self, capacity: 2) { pieces in
                pieces.initialize(repeating: IOVector(base: nil, count: 0))
                pieces[0] = IOVector(base: first.baseAddress, count: first.count)
                pieces[1] = IOVector(base: second.baseAddress, count: second.count)
                do throws(IOError) { try storage.write(file, at: offset, gathering: UnsafeBufferPointer(pieces)); return .success(()) } catch { return .failure(error) }
            }
            try result.get()
        }
        nextFileOffset += Int64(first.count + second.count)
    }
}
