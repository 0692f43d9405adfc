import KeelCore
import KeelWire

// The catalog (recording log): two slot files, "catalog.0" and "catalog.1", each holding the whole
// catalog. Every change writes the whole catalog into the slot not holding the current one and
// fdatasyncs it before returning, so a write torn by a crash or power loss damages only the slot being
// written and the other still holds the previous catalog. The valid slot with the higher sequence is current.
//
// Slot file (docs/snapshot-format.md):
//    0        8        12       16         24             32         36         40        44      60       64
//   +--------+--------+--------+----------+--------------+----------+----------+---------+-------+--------+
//   | magic  |format  |header  | sequence | next         | snapshot | term     | body    | 0     | header |
//   | u64    |version |bytes   | u64      | snapshot id  | count    | count    | crc     |       | crc    |
//   |        |u32 = 1 |u32 = 64|          | i64          | u32      | u32      | u32     |       | u32    |
//   +--------+--------+--------+----------+--------------+----------+----------+---------+-------+--------+
//   then the body: snapshot count × 128-byte snapshot entries, then term count × 32-byte term entries.
//   magic = "KEELCATL"; header crc = CRC32C over bytes 0..<60; body crc = CRC32C over the body.
//   Bytes after the body (left from a longer earlier catalog) mean nothing.
//
// Snapshot entry (128 bytes):
//    0      8          16     24          32       40        44        48       52      54   56         120   128
//   +------+----------+------+-----------+--------+---------+---------+--------+-------+----+----------+-----+
//   | id   | position | term | timestamp | length | whole   | service | member | name  | 0  | file name| 0   |
//   | i64  | i64      | i64  | ns, i64   | i64    | crc u32 | version | id i32 | bytes |    | (ASCII,  |     |
//   |      |          |      |           |        |         | u32     |        | u16   |    | ≤ 64 B)  |     |
//   +------+----------+------+-----------+--------+---------+---------+--------+-------+----+----------+-----+
//
// Term entry (32 bytes): term i64 | start position i64 | timestamp ns i64 | 0 (8 bytes)

/// One snapshot as the catalog records it.
public struct SnapshotEntry: Sendable, Equatable, CustomStringConvertible {
    /// Assigned by the archive, increasing; names the file.
    public var id: Int64
    public var position: LogPosition
    public var term: Term
    public var timestamp: ClusterTime
    public var serviceVersion: UInt32
    public var memberID: MemberID
    /// The file's name in the archive directory.
    public var fileName: String
    /// The file's whole length, trailer included.
    public var lengthBytes: Int64
    /// CRC32C over the file's bytes before its trailer (as the trailer states it).
    public var wholeCRC: UInt32

    public init(
        id: Int64, position: LogPosition, term: Term, timestamp: ClusterTime, serviceVersion: UInt32, memberID: MemberID,
        fileName: String, lengthBytes: Int64, wholeCRC: UInt32
    ) {
        self.id = id
        self.position = position
        self.term = term
        self.timestamp = timestamp
        self.serviceVersion = serviceVersion
        self.memberID = memberID
        self.fileName = fileName
        self.lengthBytes = lengthBytes
        self.wholeCRC = wholeCRC
    }

    public var description: String {
        "snapshot \(id) at \(position) (\(term), \(lengthBytes) bytes, crc 0x\(String(wholeCRC, radix: 16))) in \(fileName)"
    }

    /// Newer first: by position, then by id.
    func isNewer(than other: SnapshotEntry) -> Bool {
        position != other.position ? position > other.position : id > other.id
    }
}

/// Where a term begins in the log.
public struct TermHistoryEntry: Sendable, Equatable, CustomStringConvertible {
    public var term: Term
    /// The position of the term's first entry.
    public var startPosition: LogPosition
    /// The cluster time the term began at.
    public var timestamp: ClusterTime

    public init(term: Term, startPosition: LogPosition, timestamp: ClusterTime) {
        self.term = term
        self.startPosition = startPosition
        self.timestamp = timestamp
    }

    public var description: String { "\(term) from \(startPosition)" }
}

/// The catalog's contents: what one slot holds.
struct CatalogContents: Equatable {
    var sequence: UInt64 = 0
    var nextSnapshotID: Int64 = 1
    /// Oldest first (by position, then id).
    var snapshots: [SnapshotEntry] = []
    /// In term order, start positions non-decreasing.
    var terms: [TermHistoryEntry] = []
}

/// Layout constants and the slot codec.
enum CatalogFormat {
    static let version: UInt32 = 1
    /// "KEELCATL" read as a little-endian u64.
    static let magic: UInt64 = 0x4C54_4143_4C45_454B
    static let headerBytes = 64
    static let headerCRCOffset = 60
    static let snapshotEntryBytes = 128
    static let termEntryBytes = 32
    static let fileNameBytesMax = 64
    /// Bounds on what one catalog holds (so a slot is at most 64 + 128 KiB + 2 MiB).
    static let snapshotEntriesMax = 1024
    static let termEntriesMax = 65536
    static let slotNames = ["catalog.0", "catalog.1"]

    static func bodyBytes(snapshots: Int, terms: Int) -> Int { snapshots * snapshotEntryBytes + terms * termEntryBytes }

    /// Outbound encoder: the whole slot.
    static func encode(_ contents: CatalogContents) -> [UInt8] {
        let body = bodyBytes(snapshots: contents.snapshots.count, terms: contents.terms.count)
        var bytes = [UInt8](repeating: 0, count: headerBytes + body)
        bytes.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            var offset = headerBytes
            for entry in contents.snapshots {
                encode(entry, at: base + offset)
                offset += snapshotEntryBytes
            }
            for entry in contents.terms {
                (base + offset).storeBytes(of: entry.term.rawValue.littleEndian, toByteOffset: 0, as: Int64.self)
                (base + offset).storeBytes(of: entry.startPosition.rawValue.littleEndian, toByteOffset: 8, as: Int64.self)
                (base + offset).storeBytes(of: entry.timestamp.rawValue.littleEndian, toByteOffset: 16, as: Int64.self)
                offset += termEntryBytes
            }
            base.storeBytes(of: magic.littleEndian, toByteOffset: 0, as: UInt64.self)
            base.storeBytes(of: version.littleEndian, toByteOffset: 8, as: UInt32.self)
            base.storeBytes(of: UInt32(headerBytes).littleEndian, toByteOffset: 12, as: UInt32.self)
            base.storeBytes(of: contents.sequence.littleEndian, toByteOffset: 16, as: UInt64.self)
            base.storeBytes(of: contents.nextSnapshotID.littleEndian, toByteOffset: 24, as: Int64.self)
            base.storeBytes(of: UInt32(contents.snapshots.count).littleEndian, toByteOffset: 32, as: UInt32.self)
            base.storeBytes(of: UInt32(contents.terms.count).littleEndian, toByteOffset: 36, as: UInt32.self)
            let bodyCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: base + headerBytes, count: body))
            base.storeBytes(of: bodyCRC.littleEndian, toByteOffset: 40, as: UInt32.self)
            let headerCRC = CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: headerCRCOffset))
            base.storeBytes(of: headerCRC.littleEndian, toByteOffset: headerCRCOffset, as: UInt32.self)
        }
        return bytes
    }

    private static func encode(_ entry: SnapshotEntry, at base: UnsafeMutableRawPointer) {
        base.storeBytes(of: entry.id.littleEndian, toByteOffset: 0, as: Int64.self)
        base.storeBytes(of: entry.position.rawValue.littleEndian, toByteOffset: 8, as: Int64.self)
        base.storeBytes(of: entry.term.rawValue.littleEndian, toByteOffset: 16, as: Int64.self)
        base.storeBytes(of: entry.timestamp.rawValue.littleEndian, toByteOffset: 24, as: Int64.self)
        base.storeBytes(of: entry.lengthBytes.littleEndian, toByteOffset: 32, as: Int64.self)
        base.storeBytes(of: entry.wholeCRC.littleEndian, toByteOffset: 40, as: UInt32.self)
        base.storeBytes(of: entry.serviceVersion.littleEndian, toByteOffset: 44, as: UInt32.self)
        base.storeBytes(of: entry.memberID.rawValue.littleEndian, toByteOffset: 48, as: Int32.self)
        let name = Array(entry.fileName.utf8)
        precondition(name.count <= fileNameBytesMax, "snapshot file name longer than 64 bytes")
        base.storeBytes(of: UInt16(name.count).littleEndian, toByteOffset: 52, as: UInt16.self)
        for (index, byte) in name.enumerated() { base.storeBytes(of: byte, toByteOffset: 56 + index, as: UInt8.self) }
    }

    /// What decoding one slot found.
    enum Decoded: Equatable {
        /// The file is empty or its header all zeros: never written.
        case empty
        case valid(CatalogContents)
        /// Damaged: the offset of the bad region and why.
        case damaged(offset: Int64, reason: String)
        case unsupportedVersion(UInt32)
    }

    /// Inbound decoder of a slot: header CRC and magic before any field, then the body's length and CRC,
    /// then each entry's fields.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> Decoded {
        if bytes.count < headerBytes {
            return bytes.allSatisfy { $0 == 0 } ? .empty : .damaged(offset: 0, reason: "slot shorter than its 64-byte header")
        }
        let base = bytes.baseAddress!
        if UnsafeRawBufferPointer(start: base, count: headerBytes).allSatisfy({ $0 == 0 }) { return .empty }
        let storedHeaderCRC = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: headerCRCOffset, as: UInt32.self))
        guard storedHeaderCRC == CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: headerCRCOffset)) else {
            return .damaged(offset: 0, reason: "header CRC mismatch")
        }
        guard UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: UInt64.self)) == magic else {
            return .damaged(offset: 0, reason: "bad magic (not a catalog slot)")
        }
        let slotVersion = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard slotVersion == version else { return .unsupportedVersion(slotVersion) }
        let snapshotCount = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 32, as: UInt32.self)))
        let termCount = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 36, as: UInt32.self)))
        guard UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 12, as: UInt32.self)) == UInt32(headerBytes),
              snapshotCount <= snapshotEntriesMax, termCount <= termEntriesMax else {
            return .damaged(offset: 0, reason: "header states \(snapshotCount) snapshots and \(termCount) terms, beyond the limits")
        }
        let body = bodyBytes(snapshots: snapshotCount, terms: termCount)
        guard bytes.count >= headerBytes + body else {
            return .damaged(offset: Int64(headerBytes), reason: "body of \(body) bytes runs past the slot's end (\(bytes.count) bytes)")
        }
        let storedBodyCRC = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 40, as: UInt32.self))
        guard storedBodyCRC == CRC32C.checksum(UnsafeRawBufferPointer(start: base + headerBytes, count: body)) else {
            return .damaged(offset: Int64(headerBytes), reason: "body CRC mismatch")
        }
        var contents = CatalogContents(
            sequence: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: UInt64.self)),
            nextSnapshotID: Int64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: Int64.self)))
        var offset = headerBytes
        for _ in 0..<snapshotCount {
            guard let entry = decodeSnapshotEntry(at: base + offset) else {
                return .damaged(offset: Int64(offset), reason: "snapshot entry with an invalid field")
            }
            contents.snapshots.append(entry)
            offset += snapshotEntryBytes
        }
        for _ in 0..<termCount {
            let entryBase = base + offset
            contents.terms.append(TermHistoryEntry(
                term: Term(Int64(littleEndian: entryBase.loadUnaligned(fromByteOffset: 0, as: Int64.self))),
                startPosition: LogPosition(Int64(littleEndian: entryBase.loadUnaligned(fromByteOffset: 8, as: Int64.self))),
                timestamp: ClusterTime(rawValue: Int64(littleEndian: entryBase.loadUnaligned(fromByteOffset: 16, as: Int64.self)))))
            offset += termEntryBytes
        }
        return .valid(contents)
    }

    private static func decodeSnapshotEntry(at base: UnsafeRawPointer) -> SnapshotEntry? {
        let nameBytes = Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: 52, as: UInt16.self)))
        guard nameBytes > 0 && nameBytes <= fileNameBytesMax else { return nil }
        let name = String(decoding: UnsafeRawBufferPointer(start: base + 56, count: nameBytes), as: UTF8.self)
        guard name.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F && $0 != UInt8(ascii: "/") }) else { return nil }
        let entry = SnapshotEntry(
            id: Int64(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: Int64.self)),
            position: LogPosition(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: Int64.self))),
            term: Term(Int64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: Int64.self))),
            timestamp: ClusterTime(rawValue: Int64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: Int64.self))),
            serviceVersion: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 44, as: UInt32.self)),
            memberID: MemberID(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 48, as: Int32.self))),
            fileName: name,
            lengthBytes: Int64(littleEndian: base.loadUnaligned(fromByteOffset: 32, as: Int64.self)),
            wholeCRC: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 40, as: UInt32.self)))
        guard entry.id >= 0, entry.position.rawValue >= 0, entry.term.rawValue >= 0, entry.lengthBytes >= 0 else { return nil }
        return entry
    }
}
