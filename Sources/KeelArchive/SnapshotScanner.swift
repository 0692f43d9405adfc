import KeelCore
import KeelWire

/// Where one section's bytes lie in a verified snapshot file.
struct SnapshotSectionExtent: Equatable {
    var section: SnapshotSection
    /// Offset of the section-start record.
    var startRecordOffset: Int64
    /// Index of the section-start record.
    var startRecordIndex: UInt32
    /// Bytes in the section's data chunks.
    var bytes: Int64
    var chunks: Int
}

/// What a full verification pass over a snapshot file found.
struct SnapshotScan: Equatable {
    var fileHeader: SnapshotFileHeader
    var fileLengthBytes: Int64
    /// CRC32C over every byte before the trailer (as stored in the trailer, and checked).
    var wholeCRC: UInt32
    /// The sections in file order.
    var sections: [SnapshotSectionExtent]
}

/// Reads a snapshot file from start to end, checking the header, every record's CRC, length, kind and
/// index, the section structure, the trailer's length and the whole-file CRC, through a buffer of one
/// chunk. The first problem found is reported with the offset of the region it lies in.
struct SnapshotScanner<S: Storage> {
    let storage: S
    let file: FileID
    /// The name shown in problems.
    let fileName: String

    func scan() throws(ArchiveError) -> SnapshotScan {
        let size = try storageCall { () throws(IOError) in try storage.fileSize(file) }
        let (fileHeader, headerBytesRead) = try readFileHeader()
        defer { headerBytesRead.deallocate() }
        let buffer = UnsafeMutableRawBufferPointer.allocate(
            byteCount: SnapshotFormat.recordHeaderBytes + fileHeader.chunkPayloadBytesMax, alignment: 16)
        defer { buffer.deallocate() }

        var checksums = SnapshotChecksums(chunkBytes: fileHeader.chunkPayloadBytesMax)
        checksums.add(headerBytesRead)
        var offset = Int64(SnapshotFormat.headerBytes)
        var index: UInt32 = 0
        var sections: [SnapshotSectionExtent] = []
        while true {
            let record = try readRecord(at: offset, size: size, index: index, limit: fileHeader.chunkPayloadBytesMax, into: buffer, checksums: checksums)
            let recordBytes = SnapshotFormat.recordHeaderBytes + record.payloadBytes
            switch record.kind {
            case .sectionStart:
                guard let section = SnapshotSection(rawValue: record.sectionRaw) else {
                    throw corrupt(offset, "record \(index) starts unknown section \(record.sectionRaw)")
                }
                guard record.payloadBytes == 0 else { throw corrupt(offset, "section-start record \(index) has a payload") }
                guard !sections.contains(where: { $0.section == section }) else {
                    throw corrupt(offset, "record \(index) starts the \(section) section a second time")
                }
                sections.append(SnapshotSectionExtent(section: section, startRecordOffset: offset, startRecordIndex: index, bytes: 0, chunks: 0))
            case .data:
                guard !sections.isEmpty, sections[sections.count - 1].section.rawValue == record.sectionRaw else {
                    throw corrupt(offset, "data record \(index) is outside its section \(record.sectionRaw)")
                }
                guard record.payloadBytes > 0 else { throw corrupt(offset, "data record \(index) is empty") }
                sections[sections.count - 1].bytes += Int64(record.payloadBytes)
                sections[sections.count - 1].chunks += 1
            case .trailer:
                try checkTrailer(buffer, at: offset, size: size, wholeCRC: checksums.whole, record: record)
                return SnapshotScan(fileHeader: fileHeader, fileLengthBytes: size, wholeCRC: checksums.whole, sections: sections)
            }
            checksums.addRecord(header: UnsafeRawPointer(buffer.baseAddress!), payloadCRC: record.payloadCRC, payloadBytes: record.payloadBytes)
            offset += Int64(recordBytes)
            index &+= 1
        }
    }

    private func checkTrailer(
        _ buffer: UnsafeMutableRawBufferPointer, at offset: Int64, size: Int64, wholeCRC: UInt32, record: ScannedRecord
    ) throws(ArchiveError) {
        guard record.payloadBytes == SnapshotFormat.trailerPayloadBytes, record.sectionRaw == 0 else {
            throw corrupt(offset, "trailer record \(record.index) has \(record.payloadBytes) payload bytes and section \(record.sectionRaw)")
        }
        let payload = UnsafeRawPointer(buffer.baseAddress! + SnapshotFormat.recordHeaderBytes)
        let statedLength = Int64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: Int64.self))
        let statedCRC = UInt32(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        let end = offset + Int64(SnapshotFormat.trailerRecordBytes)
        guard statedLength == end else { throw corrupt(offset, "trailer states a file length of \(statedLength) bytes; it ends at \(end)") }
        guard size == end else { throw corrupt(end, "\(size - end) bytes after the trailer") }
        guard statedCRC == wholeCRC else {
            throw corrupt(0, "whole-file CRC over bytes 0..<\(offset) is 0x\(String(wholeCRC, radix: 16)); the trailer states 0x\(String(statedCRC, radix: 16))")
        }
    }

    /// The decoded header and its 128 bytes as stored (the start of the whole-file CRC; the caller deallocates them).
    private func readFileHeader() throws(ArchiveError) -> (SnapshotFileHeader, UnsafeRawBufferPointer) {
        var bytes = [UInt8](repeating: 0, count: SnapshotFormat.headerBytes)
        let count = try read(at: 0, into: &bytes)
        let decoded = bytes.withUnsafeBytes { SnapshotFileHeader.decode(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        switch decoded {
        case .valid(let header):
            let copy = UnsafeMutableRawBufferPointer.allocate(byteCount: SnapshotFormat.headerBytes, alignment: 8)
            copy.copyBytes(from: bytes)
            return (header, UnsafeRawBufferPointer(copy))
        case .invalid(let reason): throw corrupt(0, reason)
        case .unsupportedVersion(let version):
            throw .badSnapshot(.unsupported(file: fileName, found: version, supported: SnapshotFormat.version, what: "snapshot"))
        }
    }

    struct ScannedRecord {
        var kind: SnapshotRecordKind
        var sectionRaw: UInt16
        var payloadBytes: Int
        var payloadCRC: UInt32
        var index: UInt32
    }

    /// Reads the record at `offset` (header and payload) into `buffer` and checks it on its own.
    private func readRecord(
        at offset: Int64, size: Int64, index: UInt32, limit: Int, into buffer: UnsafeMutableRawBufferPointer,
        checksums: SnapshotChecksums
    ) throws(ArchiveError) -> ScannedRecord {
        let headerBytes = SnapshotFormat.recordHeaderBytes
        guard offset + Int64(headerBytes) <= size else {
            throw corrupt(offset, "the file ends at \(size) inside record \(index)'s header: no trailer (the snapshot was never completed)")
        }
        try readExactly(at: offset, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<headerBytes]))
        let header = SnapshotRecordHeader.decode(UnsafeRawPointer(buffer.baseAddress!))
        guard let kind = SnapshotRecordKind(rawValue: header.kindRaw), buffer[9] == 0 else {
            throw corrupt(offset, "record \(index) has unknown kind \(header.kindRaw) or a non-zero reserved byte")
        }
        let limitForKind = kind == .data ? limit : (kind == .trailer ? SnapshotFormat.trailerPayloadBytes : 0)
        guard header.payloadBytes <= limitForKind else {
            throw corrupt(offset, "record \(index) claims \(header.payloadBytes) payload bytes, more than the \(limitForKind) allowed")
        }
        guard offset + Int64(headerBytes + header.payloadBytes) <= size else {
            throw corrupt(offset, "record \(index) of \(header.payloadBytes) payload bytes runs past the end of the file (\(size) bytes)")
        }
        let payload = UnsafeMutableRawBufferPointer(rebasing: buffer[headerBytes..<(headerBytes + header.payloadBytes)])
        try readExactly(at: offset + Int64(headerBytes), into: payload)
        let payloadCRC = CRC32C.checksum(UnsafeRawBufferPointer(payload))
        let crc = checksums.recordCRC(header: UnsafeRawPointer(buffer.baseAddress!), payloadCRC: payloadCRC, payloadBytes: header.payloadBytes)
        guard crc == header.storedCRC else {
            throw corrupt(offset, "record \(index) (\(describe(kind, header.sectionRaw)), \(header.payloadBytes) bytes) fails its CRC")
        }
        guard header.index == index else { throw corrupt(offset, "record \(index) carries index \(header.index): a record is missing or out of order") }
        return ScannedRecord(kind: kind, sectionRaw: header.sectionRaw, payloadBytes: header.payloadBytes, payloadCRC: payloadCRC, index: index)
    }

    private func describe(_ kind: SnapshotRecordKind, _ section: UInt16) -> String {
        let name = SnapshotSection(rawValue: section).map(\.description) ?? "section \(section)"
        switch kind {
        case .sectionStart: return "start of \(name)"
        case .data: return "data chunk of \(name)"
        case .trailer: return "trailer"
        }
    }

    private func corrupt(_ offset: Int64, _ reason: String) -> ArchiveError {
        .badSnapshot(SnapshotProblem(file: fileName, offsetBytes: offset, kind: .corrupt, reason: reason))
    }

    private func read(at offset: Int64, into bytes: inout [UInt8]) throws(ArchiveError) -> Int {
        let result: Result<Int, IOError> = bytes.withUnsafeMutableBytes { buffer in
            do throws(IOError) { return .success(try readFully(storage, file, at: offset, into: buffer)) } catch { return .failure(error) }
        }
        do { return try result.get() } catch { throw .storage(error) }
    }

    private func readExactly(at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(ArchiveError) {
        let count = try storageCall { () throws(IOError) in try readFully(storage, file, at: offset, into: buffer) }
        guard count == buffer.count else { throw corrupt(offset, "the file ends inside a record") }
    }
}

/// Reads until `buffer` is full or the file ends; returns the bytes read.
func readFully<S: Storage>(_ storage: S, _ file: FileID, at offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws(IOError) -> Int {
    var filled = 0
    while filled < buffer.count {
        let count = try storage.read(file, at: offset + Int64(filled), into: UnsafeMutableRawBufferPointer(rebasing: buffer[filled...]))
        if count == 0 { break }
        filled += count
    }
    return filled
}

/// Runs a storage call, turning its error into an `ArchiveError`.
func storageCall<T>(_ body: () throws(IOError) -> T) throws(ArchiveError) -> T {
    do { return try body() } catch { throw .storage(error) }
}
