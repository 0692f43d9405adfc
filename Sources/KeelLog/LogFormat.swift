import KeelCore

// The on-disk format of the replicated log (docs/log-format.md says the same, with the reasons).
//
// The log is a byte stream addressed by `LogPosition`. It is cut into segments of
// `segmentLengthBytes` each; segment k holds positions [k·L, (k+1)·L). Every segment file is
// `segmentHeaderRegionBytes + L` bytes long, preallocated, and named after its start position:
//
//   log-<start position, 16 hex digits>.seg      e.g. log-0000000004000000.seg
//
//   segment file
//   +---------------------------+---------------------------------------------------------------+
//   | header region (4096 B)    | data: frames at positions start ..< start + L                 |
//   | SegmentHeader, then zeros | frame | frame | ... | frame | padding frame up to segment end  |
//   +---------------------------+---------------------------------------------------------------+
//   file offset of position P = 4096 + (P - start)
//
// Segment header (little-endian), CRC32C over bytes 0..<60:
//
//    0        8        12       16               24               32               40      60   64
//   +--------+--------+--------+----------------+----------------+----------------+--...--+----+
//   | magic  |version |hdrBytes| cluster id     | start position | segment length | 0     |crc |
//   | u64    | u32    | u32    | u64            | i64            | i64            |       |u32 |
//   +--------+--------+--------+----------------+----------------+----------------+--...--+----+
//
// Frame (aligned to 32 bytes; a 64-byte header, then the payload, then zeros up to alignment):
//
//    0      4      8   9   10     12     16        24          32             40         48          56        64
//   +------+------+---+---+------+------+---------+-----------+--------------+----------+-----------+---------+----------...
//   |length| crc  |ver|flg| type | rsvd | term    | session id| correlation  | timestamp| durable   | reserved| payload
//   | u32  | u32  |u8 |u8 | u16  | u32  | i64     | i64       | / sequence id| ns, i64  | position  | u64     | (length-64 B)
//   +------+------+---+---+------+------+---------+-----------+--------------+----------+-----------+---------+----------...
//
//   length   header + payload bytes, unpadded; the frame occupies align32(length) bytes
//   crc      CRC32C over bytes 0..<4 then 8..<length (every byte of the frame except the crc itself)
//   durable  the log's durable position when the batch holding this frame was written: recovery
//            uses the highest one found to tell corruption (below it) from a torn tail (above it)
//
// A padding frame (type `.padding`) fills a segment's end when the next frame does not fit; its
// length is the whole rest of the segment and its crc covers only its first 32 bytes (0..<4, 8..<32),
// so a padding frame can be as short as one 32-byte alignment unit.

/// Constants of the log's on-disk format.
public enum LogFormat {
    /// The only frame and segment format version this code reads and writes.
    public static let version: UInt8 = 1
    /// "KEELLOG1" read as a little-endian u64.
    public static let segmentMagic: UInt64 = 0x3147_4F4C_4C45_454B
    /// Bytes before a segment's first data byte: the header, then zeros up to one page, so that data
    /// offsets are page-aligned exactly when positions are.
    public static let segmentHeaderRegionBytes = 4096
    /// Bytes of the encoded segment header (the rest of the header region is zero).
    public static let segmentHeaderBytes = 64
    /// Bytes of a frame header.
    public static let frameHeaderBytes = 64
    /// Every frame begins at a position that is a multiple of this.
    public static let frameAlignmentBytes = 32
    /// The smallest padding frame: the part of a header its CRC covers.
    public static let paddingFrameMinimumBytes = 32

    /// `bytes` rounded up to the frame alignment.
    @inlinable
    public static func aligned(_ bytes: Int) -> Int {
        (bytes + frameAlignmentBytes - 1) & ~(frameAlignmentBytes - 1)
    }

    /// The file name of the segment starting at `start`: sorts by start position in a listing.
    public static func segmentFileName(start: LogPosition) -> String {
        let hex = String(UInt64(bitPattern: start.rawValue), radix: 16)
        return "log-" + String(repeating: "0", count: 16 - hex.count) + hex + ".seg"
    }

    /// The start position named by a segment file name, or nil for any other file.
    public static func segmentStart(fileName: String) -> LogPosition? {
        guard fileName.hasPrefix("log-"), fileName.hasSuffix(".seg"), fileName.utf8.count == 24 else { return nil }
        let digits = fileName.dropFirst(4).dropLast(4)
        guard let value = UInt64(digits, radix: 16), value <= UInt64(Int64.max) else { return nil }
        return LogPosition(Int64(value))
    }
}

/// What a log entry is. Stored as a u16 in each frame header.
public enum LogEntryType: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// Fills the end of a segment; carries no entry.
    case padding = 0
    /// A client's request to the service.
    case sessionMessage = 1
    /// A client session opened.
    case sessionOpen = 2
    /// A client session closed.
    case sessionClose = 3
    /// A timer scheduled by the service fired.
    case timerEvent = 4
    /// A leader's first entry in its term.
    case newLeadershipTerm = 5
    /// The position at which a snapshot was taken.
    case snapshotMarker = 6
    /// Reserved for cluster membership changes.
    case membershipChange = 7
    /// A cluster-wide action (suspend, resume, shutdown: the correlation id says which), applied by
    /// every member in log order.
    case clusterAction = 8

    public var description: String {
        switch self {
        case .padding: "padding"
        case .sessionMessage: "session message"
        case .sessionOpen: "session open"
        case .sessionClose: "session close"
        case .timerEvent: "timer event"
        case .newLeadershipTerm: "new leadership term"
        case .snapshotMarker: "snapshot marker"
        case .membershipChange: "membership change"
        case .clusterAction: "cluster action"
        }
    }
}
