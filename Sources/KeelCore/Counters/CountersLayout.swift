import Synchronization

/// The fixed layout of a counters region (DESIGN.md decision 13): a header and `capacity` counter
/// slots, so that another process can map the same bytes and read every counter live (AeronStat).
///
/// All integers are little-endian (the host order on every platform Keel runs on), at aligned offsets.
///
/// ```
/// header (128 bytes)
///  0                   8          12          16          20          24
///  +-------------------+----------+-----------+-----------+-----------+
///  | magic "KEELCNTR"  | version  | headerBytes| slotBytes | capacity |
///  +-------------------+----------+-----------+-----------+-----------+
///  24                  32                   40                   48 .. 128
///  +-------------------+--------------------+--------------------+----------+
///  | pid (Int64)       | startEpochNanos    | allocatedCount     | reserved |
///  +-------------------+--------------------+--------------------+----------+
///
/// slot i at headerBytes + i * slotBytes (128 bytes each; values of two slots never share a cache line)
///  0           8          12             16          32                              128
///  +-----------+----------+--------------+-----------+-------------------------------+
///  | value     | typeId   | labelLength  | reserved  | label (UTF-8, up to 96 bytes)  |
///  | (Int64)   | (Int32)  | (Int32)      |           |                               |
///  +-----------+----------+--------------+-----------+-------------------------------+
/// ```
/// Publication order: the writer fills the header and only then stores `magic` (release), so a
/// reader that sees the magic sees a complete header. A slot's type and label are written before
/// `allocatedCount` is raised (release); readers load `allocatedCount` (acquire) and only read the
/// slots below it. Values are stored with release and loaded with acquire.
public enum CountersLayout {
    /// "KEELCNTR" read as a little-endian UInt64.
    public static let magic: UInt64 = 0x5254_4E43_4C45_454B
    /// The layout version this build writes and reads.
    public static let version: UInt32 = 1
    /// Size of the header in bytes.
    public static let headerBytes = 128
    /// Size of one counter slot in bytes.
    public static let slotBytes = 128
    /// The longest label a slot holds, in UTF-8 bytes (longer labels are cut at a character boundary).
    public static let labelBytesMax = 96

    // Header field offsets.
    static let magicOffset = 0
    static let versionOffset = 8
    static let headerBytesOffset = 12
    static let slotBytesOffset = 16
    static let capacityOffset = 20
    static let pidOffset = 24
    static let startEpochNanosOffset = 32
    static let allocatedCountOffset = 40

    // Slot field offsets.
    static let valueOffset = 0
    static let typeIDOffset = 8
    static let labelLengthOffset = 12
    static let labelOffset = 32

    /// The bytes a region with room for `capacity` counters needs.
    public static func requiredBytes(capacity: Int) -> Int {
        precondition(capacity >= 0, "counter capacity must not be negative")
        return headerBytes + capacity * slotBytes
    }
}

/// Why a region of memory is not a readable counters region or error log.
public enum ObservabilityFormatError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The region is smaller than the fixed header.
    case tooSmall(bytes: Int, minimum: Int)
    /// The magic is zero: the writer has created the file but not yet finished its header.
    case notInitialized
    /// The first eight bytes are not this kind of file's magic.
    case wrongMagic(found: UInt64, expected: UInt64)
    /// A layout version this build does not read.
    case unsupportedVersion(found: UInt32, supported: UInt32)
    /// A header field contradicts the layout or the region's size.
    case inconsistentLayout(String)

    public var description: String {
        switch self {
        case .tooSmall(let bytes, let minimum): "file too small: \(bytes) bytes, the header alone needs \(minimum)"
        case .notInitialized: "file not initialised yet (its writer is still starting)"
        case .wrongMagic(let found, let expected):
            "wrong magic 0x\(String(found, radix: 16)) (expected 0x\(String(expected, radix: 16))): not a file of this kind"
        case .unsupportedVersion(let found, let supported): "layout version \(found), this build reads version \(supported)"
        case .inconsistentLayout(let detail): "inconsistent layout: \(detail)"
        }
    }
}

// Atomic access to Int64 / UInt64 fields of a shared region. The region is mapped by several processes;
// `Atomic` has the layout of its value, so a pointer into the region can be viewed as one.
@inline(__always)
func atomicInt64(_ base: UnsafeRawPointer, _ offset: Int) -> UnsafeMutablePointer<Atomic<Int64>> {
    precondition((Int(bitPattern: base) + offset) & 7 == 0, "atomic field must be 8-byte aligned")
    // Safe because: the field is 8-byte aligned and inside the region, and every access to it goes
    // through Atomic; read-only mappings are only ever loaded from.
    return UnsafeMutableRawPointer(mutating: base + offset).assumingMemoryBound(to: Atomic<Int64>.self)
}

@inline(__always)
func atomicUInt64(_ base: UnsafeRawPointer, _ offset: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
    precondition((Int(bitPattern: base) + offset) & 7 == 0, "atomic field must be 8-byte aligned")
    return UnsafeMutableRawPointer(mutating: base + offset).assumingMemoryBound(to: Atomic<UInt64>.self)
}

/// The longest prefix of `text`'s UTF-8 bytes that fits in `limit` bytes and ends on a character boundary.
func utf8Prefix(_ text: String, limit: Int) -> [UInt8] {
    var bytes = Array(text.utf8)
    if bytes.count <= limit { return bytes }
    var end = limit
    // Step back over continuation bytes (10xxxxxx) so a multi-byte character is not split.
    while end > 0 && bytes[end] & 0xC0 == 0x80 { end -= 1 }
    bytes.removeSubrange(end...)
    return bytes
}
