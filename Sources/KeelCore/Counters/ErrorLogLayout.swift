/// The fixed layout of a bounded distinct-error log (DESIGN.md decision 13; Agrona's
/// DistinctErrorLog): each distinct (kind, message) is stored once, with how often it happened and
/// when first and last. When the region is full the entries already there are kept and new
/// distinct errors are only counted as dropped.
///
/// ```
/// header (64 bytes)
///  0                  8         12           16               24       32                 40
///  +------------------+---------+------------+----------------+--------+------------------+
///  | magic "KEELERRS" | version | headerBytes| capacityBytes  | pid    | startEpochNanos  |
///  +------------------+---------+------------+----------------+--------+------------------+
///  40                 48                 56 .. 64
///  +------------------+------------------+----------+
///  | usedBytes        | droppedCount     | reserved |
///  +------------------+------------------+----------+
///
/// records from offset 64, each 8-byte aligned, `usedBytes` of them in all
///  0            4        8        16               24              32             36         40
///  +------------+--------+--------+----------------+---------------+--------------+----------+---------+
///  | recordBytes| kind   | count  | firstEpochNanos| lastEpochNanos| messageBytes | reserved | message |
///  | (Int32)    | (Int32)| (Int64)|                |               | (Int32)      |          | UTF-8   |
///  +------------+--------+--------+----------------+---------------+--------------+----------+---------+
/// ```
/// Publication order: a record is written completely before `usedBytes` is raised past it (release);
/// readers load `usedBytes` (acquire) and read records below it. A repeat updates `lastEpochNanos`
/// then `count` (release stores); readers load them with acquire.
public enum ErrorLogLayout {
    /// "KEELERRS" read as a little-endian UInt64.
    public static let magic: UInt64 = 0x5352_5245_4C45_454B
    /// The layout version this build writes and reads.
    public static let version: UInt32 = 1
    /// Size of the header in bytes.
    public static let headerBytes = 64
    /// Size of a record's fixed part in bytes.
    public static let recordHeaderBytes = 40
    /// The longest message kept, in UTF-8 bytes (longer ones are cut at a character boundary).
    public static let messageBytesMax = 4096
    /// The default size of an error log file: 1 MiB.
    public static let defaultFileBytes = 1 << 20

    static let magicOffset = 0
    static let versionOffset = 8
    static let headerBytesOffset = 12
    static let capacityBytesOffset = 16
    static let pidOffset = 24
    static let startEpochNanosOffset = 32
    static let usedBytesOffset = 40
    static let droppedCountOffset = 48

    static let recordBytesOffset = 0
    static let kindOffset = 4
    static let countOffset = 8
    static let firstEpochNanosOffset = 16
    static let lastEpochNanosOffset = 24
    static let messageBytesOffset = 32
    static let messageOffset = 40

    /// The bytes a record with a message of `messageBytes` bytes takes (8-byte aligned).
    static func recordBytes(messageBytes: Int) -> Int { (recordHeaderBytes + messageBytes + 7) & ~7 }
}

/// One distinct error as read from an error log.
public struct ErrorLogEntry: Sendable, Equatable {
    /// The kind given when it was recorded.
    public var kind: ErrorKind
    /// The message (possibly cut to `ErrorLogLayout.messageBytesMax` bytes).
    public var message: String
    /// How many times it was recorded.
    public var count: Int64
    /// When it was first recorded (ns since the epoch).
    public var firstEpochNanos: Int64
    /// When it was last recorded (ns since the epoch).
    public var lastEpochNanos: Int64

    public init(kind: ErrorKind, message: String, count: Int64, firstEpochNanos: Int64, lastEpochNanos: Int64) {
        self.kind = kind
        self.message = message
        self.count = count
        self.firstEpochNanos = firstEpochNanos
        self.lastEpochNanos = lastEpochNanos
    }
}
