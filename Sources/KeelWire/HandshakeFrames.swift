import KeelCore

// The first frames on a member-to-member connection (DESIGN.md decision 12). Both layouts are
// frozen: they never change across protocol versions, and their decoders accept any non-zero
// header version, so two members of different versions can still say precisely why they refuse.

/// Member → member, first frame each way: who I am and which cluster configuration I run.
/// The connecting member sends it; the accepting member answers with its own handshake, or with a
/// `HandshakeRefusedFrame` naming what differs, and closes.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 32           |version| 0x20  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                        clusterID (u64)                        |
///     +---------------------------------------------------------------+
///  16 |       configurationDigest (u64): members + durability mode    |
///     +-------------------------------+---------------+---------------+
///  24 |     memberID (i32, ≥ 0)       |protocolVersion| reserved = 0  |
///     |                               |   (u16, ≥ 1)  |     (u16)     |
///     +-------------------------------+---------------+---------------+  32
/// ```
public struct HandshakeFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .handshake, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let member = frame.wireLoad(Int32.self, at: 24), version = frame.wireLoad(UInt16.self, at: 28)
        try FrameCheck.require(member >= 0, "memberID", Int64(member))
        try FrameCheck.require(version >= 1, "protocolVersion", Int64(version))
        try FrameCheck.reservedZero(frame, at: 30, count: 2)
        bytes = frame
    }

    public var clusterID: UInt64 { bytes.wireLoad(UInt64.self, at: 8) }
    public var configurationDigest: UInt64 { bytes.wireLoad(UInt64.self, at: 16) }
    public var memberID: MemberID { MemberID(bytes.wireLoad(Int32.self, at: 24)) }
    /// The protocol version the sender speaks (the frame header's version says the same; this copy
    /// sits in the frozen body so it is never misread).
    public var protocolVersion: UInt16 { bytes.wireLoad(UInt16.self, at: 28) }

    /// Outbound encoder; returns the frame length. `protocolVersion` defaults to this build's.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, clusterID: UInt64, configurationDigest: UInt64, memberID: MemberID,
        protocolVersion: UInt16 = UInt16(WireProtocol.version)
    ) -> Int {
        precondition(memberID.rawValue >= 0 && protocolVersion >= 1, "bad handshake identity")
        FrameHeader.write(into: buffer, length: length, type: .handshake)
        buffer.wireStore(clusterID, at: 8)
        buffer.wireStore(configurationDigest, at: 16)
        buffer.wireStore(memberID.rawValue, at: 24)
        buffer.wireStore(protocolVersion, at: 28)
        buffer.wireStore(UInt16(0), at: 30)
        return length
    }
}

/// What differs between two members that refuse to talk.
public enum HandshakeMismatch: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// The peer belongs to another cluster (`expected`/`actual` are cluster ids).
    case clusterID = 1
    /// The peer's member id is not in this member's configuration (`actual` is its member id).
    case unknownMember = 2
    /// The peer runs another configuration (`expected`/`actual` are configuration digests).
    case configurationDigest = 3
    /// The peer speaks another protocol version (`expected`/`actual` are versions).
    case protocolVersion = 4
    /// The peer claims this member's own id, or one already connected (`actual` is the member id).
    case duplicateMember = 5
    /// The peer did not prove the cluster secret: a wrong secret, or one side has none configured
    /// (`expected`/`actual` are 1 when that side has a secret, else 0).
    case clusterSecret = 6

    public var description: String {
        switch self {
        case .clusterID: "cluster id differs"
        case .unknownMember: "member not in the configuration"
        case .configurationDigest: "cluster configuration differs"
        case .protocolVersion: "protocol version differs"
        case .duplicateMember: "member id already connected"
        case .clusterSecret: "cluster secret not proven"
        }
    }
}

/// Member → member: the answer to a handshake that cannot be accepted, naming what differs; the
/// sender closes the connection after it.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x21  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 | mismatch (u16)|detailLen (u16)|        reserved = 0 (u32)     |
///     +---------------+---------------+-------------------------------+
///  16 |         expected (u64): this member's value of the field      |
///     +---------------------------------------------------------------+
///  24 |          actual (u64): the value the peer presented           |
///     +---------------------------------------------------------------+
///  32 |     detail: detailLen ≤ 1024 bytes of UTF-8 text, no controls ...
///     +---------------------------------------------------------------+
/// mismatch: 1 cluster id, 2 unknown member, 3 configuration digest, 4 protocol version,
/// 5 duplicate member, 6 cluster secret. length = 32 + detailLen.
/// ```
public struct HandshakeRefusedFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .handshakeRefused, minimumLength: Self.fixedBytes)
        let mismatch = frame.wireLoad(UInt16.self, at: 8), detailLength = Int(frame.wireLoad(UInt16.self, at: 10))
        try FrameCheck.require(HandshakeMismatch(rawValue: mismatch) != nil, "mismatch", Int64(mismatch))
        try FrameCheck.require(detailLength <= WireProtocol.maxDetailBytes, "detailLength", Int64(detailLength))
        try FrameCheck.reservedZero(frame, at: 12, count: 4)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: detailLength)
        try FrameCheck.text(frame.wireSlice(at: Self.fixedBytes, count: detailLength), "detail")
        bytes = frame
    }

    public var mismatch: HandshakeMismatch { HandshakeMismatch(rawValue: bytes.wireLoad(UInt16.self, at: 8))! }
    public var expected: UInt64 { bytes.wireLoad(UInt64.self, at: 16) }
    public var actual: UInt64 { bytes.wireLoad(UInt64.self, at: 24) }
    /// The detail text's bytes, in place.
    public var detailBytes: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }
    /// The detail as a string (allocates; for logging).
    public var detail: String { String(decoding: detailBytes, as: UTF8.self) }

    /// The frame length for a detail of `detailByteCount` bytes.
    public static func encodedLength(detailByteCount: Int) -> Int { fixedBytes + detailByteCount }

    /// Outbound encoder; returns the frame length. `detail` must be at most 1024 bytes without control bytes.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, mismatch: HandshakeMismatch, expected: UInt64, actual: UInt64,
        detail: UnsafeRawBufferPointer
    ) -> Int {
        precondition(detail.count <= WireProtocol.maxDetailBytes, "refusal detail too long")
        let length = fixedBytes + detail.count
        FrameHeader.write(into: buffer, length: length, type: .handshakeRefused)
        buffer.wireStore(mismatch.rawValue, at: 8)
        buffer.wireStore(UInt16(detail.count), at: 10)
        buffer.wireStore(UInt32(0), at: 12)
        buffer.wireStore(expected, at: 16)
        buffer.wireStore(actual, at: 24)
        buffer.wireCopy(detail, at: fixedBytes)
        return length
    }
}
