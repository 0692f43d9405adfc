import KeelCore
import KeelService

/// A verified snapshot opened for loading (from `SnapshotArchive.newestValidSnapshot()`): every chunk
/// CRC and the whole-file CRC were checked before it was handed out. Open a reader per section; the
/// file stays open until `close()` (or until the load and its readers are released).
/// Use it on the thread that owns the archive's storage.
public final class SnapshotLoad<S: Storage> {
    /// The catalog's entry for this snapshot.
    public let entry: SnapshotEntry
    /// The identity stored in the file.
    public let header: SnapshotHeader
    /// Newer snapshots that failed verification, newest first, each with file, offset and reason.
    public let rejected: [SnapshotProblem]
    let storage: S
    private var file: FileID?
    let scan: SnapshotScan
    let displayName: String

    init(entry: SnapshotEntry, scan: SnapshotScan, storage: S, file: FileID, displayName: String, rejected: [SnapshotProblem]) {
        self.entry = entry
        header = scan.fileHeader.header
        self.rejected = rejected
        self.storage = storage
        self.file = file
        self.scan = scan
        self.displayName = displayName
    }

    deinit { close() }

    /// The sections the snapshot holds, in file order.
    public var sections: [SnapshotSection] { scan.sections.map(\.section) }

    /// The number of bytes in `section` (nil when the snapshot does not hold it).
    public func byteCount(of section: SnapshotSection) -> Int64? {
        scan.sections.first { $0.section == section }?.bytes
    }

    /// A reader streaming `section`'s bytes back in the order they were written, re-checking each
    /// chunk's CRC as it reads; nil when the snapshot does not hold the section.
    public func reader(for section: SnapshotSection) throws(ArchiveError) -> SnapshotSectionReader<S>? {
        guard let extent = scan.sections.first(where: { $0.section == section }) else { return nil }
        guard let file else { throw .invalidRequest("snapshot \(entry.id) was closed") }
        return SnapshotSectionReader(load: self, file: file, extent: extent)
    }

    /// Closes the file. Readers made earlier fail afterwards.
    public func close() {
        if let file { storage.closeFile(file) }
        file = nil
    }

    var isOpen: Bool { file != nil }
}

/// Streams one section of a loaded snapshot, one verified chunk at a time through a buffer of one
/// chunk. It is the service's `SnapshotReader` for the service-state section.
public final class SnapshotSectionReader<S: Storage>: SnapshotReader {
    /// The `ClusteredService.snapshotVersion` the snapshot was written with.
    public let serviceVersion: UInt32
    public let section: SnapshotSection
    /// The section's length in bytes.
    public let byteCount: Int64
    private let load: SnapshotLoad<S>
    private let file: FileID
    private let buffer: UnsafeMutableRawBufferPointer
    private var nextRecordOffset: Int64
    private var nextRecordIndex: UInt32
    private var available: Range<Int> = 0..<0
    private var ended = false
    /// Bytes handed out so far.
    public private(set) var bytesRead: Int64 = 0

    init(load: SnapshotLoad<S>, file: FileID, extent: SnapshotSectionExtent) {
        self.load = load
        self.file = file
        serviceVersion = load.header.serviceVersion
        section = extent.section
        byteCount = extent.bytes
        buffer = .allocate(byteCount: SnapshotFormat.recordHeaderBytes + load.scan.fileHeader.chunkPayloadBytesMax, alignment: 4096)
        nextRecordOffset = extent.startRecordOffset + Int64(SnapshotFormat.recordHeaderBytes)
        nextRecordIndex = extent.startRecordIndex &+ 1
    }

    deinit { buffer.deallocate() }

    /// `SnapshotReader`: fills up to `buffer.count` bytes; 0 only at the end of the section.
    public func read(into destination: UnsafeMutableRawBufferPointer) throws -> Int {
        try readBytes(into: destination)
    }

    /// Typed-throws form of `read(into:)`.
    public func readBytes(into destination: UnsafeMutableRawBufferPointer) throws(ArchiveError) -> Int {
        var filled = 0
        while filled < destination.count {
            if available.isEmpty {
                if ended { break }
                try loadNextChunk()
                continue
            }
            let count = min(available.count, destination.count - filled)
            (destination.baseAddress! + filled).copyMemory(from: buffer.baseAddress! + available.lowerBound, byteCount: count)
            available = (available.lowerBound + count)..<available.upperBound
            filled += count
            bytesRead += Int64(count)
        }
        return filled
    }

    /// Reads the next record; a record that is not a data chunk of this section ends the section.
    /// Each chunk is checked again: the file may have changed since it was verified.
    private func loadNextChunk() throws(ArchiveError) {
        guard load.isOpen else { throw .invalidRequest("snapshot \(load.entry.id) was closed") }
        let headerBytes = SnapshotFormat.recordHeaderBytes
        let (storage, file, offset) = (load.storage, file, nextRecordOffset)
        let header = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<headerBytes])
        let got = try storageCall { () throws(IOError) in try readFully(storage, file, at: offset, into: header) }
        guard got == headerBytes else { throw changed("the file ends inside record \(nextRecordIndex)") }
        let record = SnapshotRecordHeader.decode(UnsafeRawPointer(buffer.baseAddress!))
        guard record.kindRaw == SnapshotRecordKind.data.rawValue, record.sectionRaw == section.rawValue else {
            ended = true
            guard bytesRead == byteCount else { throw changed("the \(section) section ended early") }
            return
        }
        guard record.payloadBytes <= buffer.count - headerBytes else { throw changed("record \(nextRecordIndex) is larger than a chunk") }
        let payload = UnsafeMutableRawBufferPointer(rebasing: buffer[headerBytes..<(headerBytes + record.payloadBytes)])
        let payloadGot = try storageCall { () throws(IOError) in try readFully(storage, file, at: offset + Int64(headerBytes), into: payload) }
        guard payloadGot == record.payloadBytes,
              SnapshotRecordHeader.crcOf(header: UnsafeRawPointer(buffer.baseAddress!), payload: UnsafeRawBufferPointer(payload)) == record.storedCRC,
              record.index == nextRecordIndex
        else { throw changed("record \(nextRecordIndex) fails its CRC or index") }
        available = headerBytes..<(headerBytes + record.payloadBytes)
        nextRecordOffset += Int64(headerBytes + record.payloadBytes)
        nextRecordIndex &+= 1
    }

    private func changed(_ reason: String) -> ArchiveError {
        .badSnapshot(SnapshotProblem(
            file: load.displayName, offsetBytes: nextRecordOffset, kind: .corrupt,
            reason: "\(reason) (the file changed after it was verified)"))
    }
}
