import KeelCore
import KeelWire

// The snapshot file (docs/snapshot-format.md). Everything is little-endian.
//
//   +--------------------+-----------------+-------+-------+-----+-----------------+-------+-----+---------+
//   | file header (128 B)| section record  | data  | data  | ... | section record  | data  | ... | trailer |
//   |                    | consensus state | chunk | chunk |     | service state   | chunk |     | record  |
//   +--------------------+-----------------+-------+-------+-----+-----------------+-------+-----+---------+
//
// File header:
//    0        8        12       16            24           32      40         48          56       60       64
//   +--------+--------+--------+-------------+------------+-------+----------+-----------+--------+--------+
//   | magic  |format  |header  | snapshot id | cluster id | term  | log      | cluster   |service |member  |
//   | u64    |version |bytes   | i64         | u64        | i64   | position | timestamp |version |id      |
//   |        |u32 = 1 |u32=128 |             |            |       | i64      | ns, i64   |u32     |i32     |
//   +--------+--------+--------+-------------+------------+-------+----------+-----------+--------+--------+
//   64              68                                                                  124        128
//   +---------------+-------------------------------------------------------------------+----------+
//   | chunk payload | reserved (zero)                                                   | header   |
//   | bytes max u32 |                                                                   | crc u32  |
//   +---------------+-------------------------------------------------------------------+----------+
//   magic = "KEELSNAP"; header crc = CRC32C over bytes 0..<124.
//
// Record (section start, data chunk, or trailer), one after another from offset 128:
//    0                4              8      9      10          12               16
//   +----------------+--------------+------+------+-----------+----------------+------------------------+
//   | payload length | record crc   | kind | 0    | section   | record index   | payload (length bytes) |
//   | u32            | u32          | u8   | u8   | u16       | u32            |                        |
//   +----------------+--------------+------+------+-----------+----------------+------------------------+
//   kind: 1 section start (no payload), 2 data chunk (1 ... chunk payload bytes max), 3 trailer
//   section: 1 consensus state, 2 service state (0 in the trailer)
//   record index: 0, 1, 2, … in file order (a lost, repeated or reordered chunk shows even with good CRCs)
//   record crc: CRC32C over bytes 0..<4, then 8..<16, then the payload
//
// Trailer payload (16 bytes; the trailer is the last record, and the file ends with it):
//    0                      8                 12              16
//   +----------------------+-----------------+---------------+
//   | file length i64      | whole crc u32   | 0             |
//   | (trailer included)   | over 0..<start  |               |
//   |                      | of the trailer  |               |
//   +----------------------+-----------------+---------------+

/// Layout constants of the snapshot file (diagram above).
enum SnapshotFormat {
    /// The only format version this build writes and reads.
    static let version: UInt32 = 1
    /// "KEELSNAP" read as a little-endian u64.
    static let magic: UInt64 = 0x5041_4E53_4C45_454B
    static let headerBytes = 128
    static let headerCRCOffset = 124
    static let recordHeaderBytes = 16
    static let trailerPayloadBytes = 16
    static let trailerRecordBytes = recordHeaderBytes + trailerPayloadBytes
    /// Chunk payloads may be at most this large (a header naming more is refused before any allocation).
    static let chunkPayloadBytesLimit = 64 << 20
    /// The smallest chunk payload a writer may be configured with.
    static let chunkPayloadBytesMinimum = 4096

    /// The final name of snapshot `id`; hex digits sort the directory in id order.
    static func fileName(id: Int64) -> String { "snapshot-\(hex16(id)).snap" }
    /// The name a snapshot is written under until it is complete and synced.
    static func temporaryName(id: Int64) -> String { "snapshot-\(hex16(id)).tmp" }
    /// The name a snapshot that failed verification at a restart is kept under (never loaded or adopted).
    static func rejectedName(id: Int64) -> String { "snapshot-\(hex16(id)).rejected" }

    /// The id in a final snapshot name, or nil for any other name.
    static func snapshotID(fromFileName name: String) -> Int64? { id(in: name, suffix: ".snap") }
    /// The id in a temporary snapshot name, or nil for any other name.
    static func snapshotID(fromTemporaryName name: String) -> Int64? { id(in: name, suffix: ".tmp") }
    /// The id in a rejected snapshot's name, or nil for any other name.
    static func snapshotID(fromRejectedName name: String) -> Int64? { id(in: name, suffix: ".rejected") }

    private static func id(in name: String, suffix: String) -> Int64? {
        let prefix = "snapshot-"
        guard name.hasPrefix(prefix), name.hasSuffix(suffix), name.utf8.count == prefix.utf8.count + 16 + suffix.utf8.count else { return nil }
        let digits = name.dropFirst(prefix.count).dropLast(suffix.count)
        guard let value = UInt64(digits, radix: 16), value <= UInt64(Int64.max) else { return nil }
        return Int64(value)
    }

    static func hex16(_ value: Int64) -> String {
        let digits = String(UInt64(bitPattern: value), radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}

/// What a record is.
enum SnapshotRecordKind: UInt8 {
    case sectionStart = 1
    case data = 2
    case trailer = 3
}

/// One of the opaque byte streams a snapshot holds, each written once, in any order.
public enum SnapshotSection: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// The runtime's own state at the snapshot's position (sessions, timers, ids, membership).
    case consensusState = 1
    /// The bytes the service wrote in `ClusteredService.onTakeSnapshot`.
    case serviceState = 2

    public var description: String {
        switch self {
        case .consensusState: "consensus state"
        case .serviceState: "service state"
        }
    }
}

/// The identity of a snapshot, written in its file header (and, with its id, in the catalog).
public struct SnapshotHeader: Sendable, Equatable {
    /// `ClusteredService.snapshotVersion` of the service that writes the service state.
    public var serviceVersion: UInt32
    /// The cluster the node belongs to.
    public var clusterID: UInt64
    /// The term of the entry at `position` (the last entry the state includes).
    public var term: Term
    /// The log position the state is taken at: every entry below it is applied, none at or above it.
    public var position: LogPosition
    /// The cluster time of the last entry applied.
    public var timestamp: ClusterTime
    /// The member that wrote the snapshot.
    public var memberID: MemberID

    public init(serviceVersion: UInt32, clusterID: UInt64, term: Term, position: LogPosition, timestamp: ClusterTime, memberID: MemberID) {
        self.serviceVersion = serviceVersion
        self.clusterID = clusterID
        self.term = term
        self.position = position
        self.timestamp = timestamp
        self.memberID = memberID
    }
}

/// The decoded file header.
struct SnapshotFileHeader: Equatable {
    var snapshotID: Int64
    var header: SnapshotHeader
    var chunkPayloadBytesMax: Int

    /// Outbound encoder: the 128 header bytes into `buffer`.
    func encode(into buffer: UnsafeMutableRawBufferPointer) {
        precondition(buffer.count >= SnapshotFormat.headerBytes, "snapshot header needs 128 bytes")
        let base = buffer.baseAddress!
        base.initializeMemory(as: UInt8.self, repeating: 0, count: SnapshotFormat.headerBytes)
        base.storeBytes(of: SnapshotFormat.magic.littleEndian, toByteOffset: 0, as: UInt64.self)
        base.storeBytes(of: SnapshotFormat.version.littleEndian, toByteOffset: 8, as: UInt32.self)
        base.storeBytes(of: UInt32(SnapshotFormat.headerBytes).littleEndian, toByteOffset: 12, as: UInt32.self)
        base.storeBytes(of: snapshotID.littleEndian, toByteOffset: 16, as: Int64.self)
        base.storeBytes(of: header.clusterID.littleEndian, toByteOffset: 24, as: UInt64.self)
        base.storeBytes(of: header.term.rawValue.littleEndian, toByteOffset: 32, as: Int64.self)
        base.storeBytes(of: header.position.rawValue.littleEndian, toByteOffset: 40, as: Int64.self)
        base.storeBytes(of: header.timestamp.rawValue.littleEndian, toByteOffset: 48, as: Int64.self)
        base.storeBytes(of: header.serviceVersion.littleEndian, toByteOffset: 56, as: UInt32.self)
        base.storeBytes(of: header.memberID.rawValue.littleEndian, toByteOffset: 60, as: Int32.self)
        base.storeBytes(of: UInt32(chunkPayloadBytesMax).littleEndian, toByteOffset: 64, as: UInt32.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: SnapshotFormat.headerCRCOffset))
        base.storeBytes(of: crc.littleEndian, toByteOffset: SnapshotFormat.headerCRCOffset, as: UInt32.self)
    }

    /// What decoding a file header found.
    enum Decoded: Equatable {
        case valid(SnapshotFileHeader)
        case invalid(reason: String)
        case unsupportedVersion(UInt32)
    }

    /// Inbound decoder: checks magic and CRC before trusting any field.
    static func decode(_ bytes: UnsafeRawBufferPointer) -> Decoded {
        guard bytes.count >= SnapshotFormat.headerBytes else { return .invalid(reason: "file shorter than a snapshot header (\(bytes.count) of 128 bytes)") }
        let base = bytes.baseAddress!
        let magic = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard magic == SnapshotFormat.magic else { return .invalid(reason: "bad magic 0x\(String(magic, radix: 16)) (not a snapshot file)") }
        let stored = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: SnapshotFormat.headerCRCOffset, as: UInt32.self))
        let actual = CRC32C.checksum(UnsafeRawBufferPointer(start: base, count: SnapshotFormat.headerCRCOffset))
        guard stored == actual else { return .invalid(reason: "header CRC mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(actual, radix: 16)))") }
        let version = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 8, as: UInt32.self))
        guard version == SnapshotFormat.version else { return .unsupportedVersion(version) }
        let headerBytes = UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        guard headerBytes == UInt32(SnapshotFormat.headerBytes) else { return .invalid(reason: "header of \(headerBytes) bytes, expected 128") }
        let chunkMax = Int(UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 64, as: UInt32.self)))
        guard chunkMax >= 1 && chunkMax <= SnapshotFormat.chunkPayloadBytesLimit else {
            return .invalid(reason: "chunk payload limit of \(chunkMax) bytes is outside 1...\(SnapshotFormat.chunkPayloadBytesLimit)")
        }
        let id = Int64(littleEndian: base.loadUnaligned(fromByteOffset: 16, as: Int64.self))
        let position = Int64(littleEndian: base.loadUnaligned(fromByteOffset: 40, as: Int64.self))
        let term = Int64(littleEndian: base.loadUnaligned(fromByteOffset: 32, as: Int64.self))
        guard id >= 0, position >= 0, term >= 0 else { return .invalid(reason: "negative snapshot id, position or term") }
        return .valid(SnapshotFileHeader(
            snapshotID: id,
            header: SnapshotHeader(
                serviceVersion: UInt32(littleEndian: base.loadUnaligned(fromByteOffset: 56, as: UInt32.self)),
                clusterID: UInt64(littleEndian: base.loadUnaligned(fromByteOffset: 24, as: UInt64.self)),
                term: Term(term),
                position: LogPosition(position),
                timestamp: ClusterTime(rawValue: Int64(littleEndian: base.loadUnaligned(fromByteOffset: 48, as: Int64.self))),
                memberID: MemberID(Int32(littleEndian: base.loadUnaligned(fromByteOffset: 60, as: Int32.self)))
            ),
            chunkPayloadBytesMax: chunkMax
        ))
    }
}

/// A record header as read from a file.
struct SnapshotRecordHeader {
    var payloadBytes: Int
    var storedCRC: UInt32
    var kindRaw: UInt8
    var sectionRaw: UInt16
    var index: UInt32

    /// Outbound encoder: the 16 header bytes, with the CRC over them and the payload (whose CRC32C is
    /// `payloadCRC`); adds the record to `checksums`' whole-file CRC.
    static func encode(
        into header: UnsafeMutableRawPointer, kind: SnapshotRecordKind, section: UInt16, index: UInt32,
        payloadBytes: Int, payloadCRC: UInt32, checksums: inout SnapshotChecksums
    ) {
        header.storeBytes(of: UInt32(payloadBytes).littleEndian, toByteOffset: 0, as: UInt32.self)
        header.storeBytes(of: kind.rawValue, toByteOffset: 8, as: UInt8.self)
        header.storeBytes(of: UInt8(0), toByteOffset: 9, as: UInt8.self)
        header.storeBytes(of: section.littleEndian, toByteOffset: 10, as: UInt16.self)
        header.storeBytes(of: index.littleEndian, toByteOffset: 12, as: UInt32.self)
        let crc = checksums.recordCRC(header: UnsafeRawPointer(header), payloadCRC: payloadCRC, payloadBytes: payloadBytes)
        header.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
        checksums.addRecord(header: UnsafeRawPointer(header), payloadCRC: payloadCRC, payloadBytes: payloadBytes)
    }

    /// The record CRC: bytes 0..<4 and 8..<16 of the header, then the payload.
    static func crcOf(header: UnsafeRawPointer, payload: UnsafeRawBufferPointer) -> UInt32 {
        var crc = CRC32C.checksum(UnsafeRawBufferPointer(start: header, count: 4))
        crc = CRC32C.checksum(UnsafeRawBufferPointer(start: header + 8, count: 8), continuing: crc)
        return CRC32C.checksum(payload, continuing: crc)
    }

    /// Inbound decoder of the 16 header bytes (fields are checked by the scanner).
    static func decode(_ header: UnsafeRawPointer) -> SnapshotRecordHeader {
        SnapshotRecordHeader(
            payloadBytes: Int(UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 0, as: UInt32.self))),
            storedCRC: UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 4, as: UInt32.self)),
            kindRaw: header.load(fromByteOffset: 8, as: UInt8.self),
            sectionRaw: UInt16(littleEndian: header.loadUnaligned(fromByteOffset: 10, as: UInt16.self)),
            index: UInt32(littleEndian: header.loadUnaligned(fromByteOffset: 12, as: UInt32.self))
        )
    }
}
