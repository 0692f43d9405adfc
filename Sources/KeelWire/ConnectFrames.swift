import KeelCore

// Opening a client session: connect → connect-accepted (then session-opened once the open entry
// commits), or redirect to the leader, or rejected with a reason.

/// Client → member: open a session, presenting credentials.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x01  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |      correlationID (i64): chosen by the client, echoed back   |
///     +-------------------------------+-------------------------------+
///  16 | credentialsLength (u32 ≤ 4096)|      reserved = 0 (u32)       |
///     +-------------------------------+-------------------------------+
///  24 |           credentials: credentialsLength opaque bytes       ...
///     +---------------------------------------------------------------+
/// length = 24 + credentialsLength.
/// ```
public struct ConnectFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 24

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .connect, minimumLength: Self.fixedBytes)
        let credentialsLength = Int(frame.wireLoad(UInt32.self, at: 16))
        try FrameCheck.require(
            credentialsLength <= WireProtocol.maxCredentialsBytes, "credentialsLength", Int64(credentialsLength))
        try FrameCheck.reservedZero(frame, at: 20, count: 4)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: credentialsLength)
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    /// The credentials, in place.
    public var credentials: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    /// The frame length for `credentialsByteCount` bytes of credentials.
    public static func encodedLength(credentialsByteCount: Int) -> Int { fixedBytes + credentialsByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, credentials: UnsafeRawBufferPointer
    ) -> Int {
        precondition(credentials.count <= WireProtocol.maxCredentialsBytes, "credentials too long")
        let length = fixedBytes + credentials.count
        FrameHeader.write(into: buffer, length: length, type: .connect)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(UInt32(credentials.count), at: 16)
        buffer.wireStore(UInt32(0), at: 20)
        buffer.wireCopy(credentials, at: fixedBytes)
        return length
    }
}

/// Leader → client: the connect was accepted; the session opens (`SessionOpenedFrame`) once the
/// leader's open entry is committed.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 32           |version| 0x02  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |              correlationID (i64): the connect's               |
///     +---------------------------------------------------------------+
///  16 |                     leaderTerm (i64, ≥ 0)                     |
///     +-------------------------------+-------------------------------+
///  24 |    leaderMemberID (i32, ≥ 0)  |      reserved = 0 (u32)       |
///     +-------------------------------+-------------------------------+  32
/// ```
public struct ConnectAcceptedFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .connectAccepted, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "leaderTerm")
        let leader = frame.wireLoad(Int32.self, at: 24)
        try FrameCheck.require(leader >= 0, "leaderMemberID", Int64(leader))
        try FrameCheck.reservedZero(frame, at: 28, count: 4)
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    public var leaderTerm: Term { Term(bytes.wireInt64(at: 16)) }
    public var leaderMemberID: MemberID { MemberID(bytes.wireLoad(Int32.self, at: 24)) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, leaderTerm: Term, leaderMemberID: MemberID
    ) -> Int {
        precondition(leaderTerm.rawValue >= 0 && leaderMemberID.rawValue >= 0, "bad leader identity")
        FrameHeader.write(into: buffer, length: length, type: .connectAccepted)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(leaderTerm.rawValue, at: 16)
        buffer.wireStore(leaderMemberID.rawValue, at: 24)
        buffer.wireStore(UInt32(0), at: 28)
        return length
    }
}

/// Follower → client: "I am not the leader; it is this member, there."
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x03  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |              correlationID (i64): the connect's               |
///     +---------------------------------------------------------------+
///  16 |                     leaderTerm (i64, ≥ 0)                     |
///     +-------------------------------+---------------+---------------+
///  24 |    leaderMemberID (i32, ≥ 0)  | port (u16, ≥1)|hostLen (u16)  |
///     +-------------------------------+---------------+---------------+
///  32 |   host: hostLen (1…255) bytes of printable ASCII, no spaces   ...
///     +---------------------------------------------------------------+
/// length = 32 + hostLen.
/// ```
public struct RedirectFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .redirect, minimumLength: Self.fixedBytes)
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "leaderTerm")
        let leader = frame.wireLoad(Int32.self, at: 24), port = frame.wireLoad(UInt16.self, at: 28)
        let hostLength = Int(frame.wireLoad(UInt16.self, at: 30))
        try FrameCheck.require(leader >= 0, "leaderMemberID", Int64(leader))
        try FrameCheck.require(port >= 1, "port", Int64(port))
        try FrameCheck.require(hostLength >= 1 && hostLength <= WireProtocol.maxHostBytes, "hostLength", Int64(hostLength))
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: hostLength)
        for byte in frame.wireSlice(at: Self.fixedBytes, count: hostLength) where byte <= 0x20 || byte >= 0x7F {
            throw .fieldOutOfRange(field: "host", value: Int64(byte))
        }
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    public var leaderTerm: Term { Term(bytes.wireInt64(at: 16)) }
    public var leaderMemberID: MemberID { MemberID(bytes.wireLoad(Int32.self, at: 24)) }
    public var port: UInt16 { bytes.wireLoad(UInt16.self, at: 28) }
    /// The host's bytes, in place.
    public var hostBytes: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }
    /// The host as a string (allocates; the client connects rarely).
    public var host: String { String(decoding: hostBytes, as: UTF8.self) }

    /// The frame length for a host of `hostByteCount` bytes.
    public static func encodedLength(hostByteCount: Int) -> Int { fixedBytes + hostByteCount }

    /// Outbound encoder; returns the frame length. `host` is 1…255 bytes of printable ASCII.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, leaderTerm: Term, leaderMemberID: MemberID,
        host: UnsafeRawBufferPointer, port: UInt16
    ) -> Int {
        precondition(leaderTerm.rawValue >= 0 && leaderMemberID.rawValue >= 0 && port >= 1, "bad leader address")
        precondition(host.count >= 1 && host.count <= WireProtocol.maxHostBytes, "host length out of range")
        let length = fixedBytes + host.count
        FrameHeader.write(into: buffer, length: length, type: .redirect)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(leaderTerm.rawValue, at: 16)
        buffer.wireStore(leaderMemberID.rawValue, at: 24)
        buffer.wireStore(port, at: 28)
        buffer.wireStore(UInt16(host.count), at: 30)
        buffer.wireCopy(host, at: fixedBytes)
        return length
    }
}

/// Why a member refused a connect.
public enum ConnectRejection: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case authenticationFailed = 1
    case tooManySessions = 2
    /// No leader is known right now (an election is in progress); retry later.
    case noLeader = 3
    case protocolVersion = 4
    case shuttingDown = 5
    /// A reattach named a session that is not open (closed, timed out, or never opened).
    case sessionNotOpen = 6

    public var description: String {
        switch self {
        case .authenticationFailed: "authentication failed"
        case .tooManySessions: "too many sessions"
        case .noLeader: "no leader known"
        case .protocolVersion: "protocol version not supported"
        case .shuttingDown: "cluster shutting down"
        case .sessionNotOpen: "session not open"
        }
    }
}

/// Member → client: the connect is refused.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x04  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |              correlationID (i64): the connect's               |
///     +---------------+---------------+-------------------------------+
///  16 | reason (u16)  |detailLen (u16)|       reserved = 0 (u32)      |
///     +---------------+---------------+-------------------------------+
///  24 |       detail: detailLen ≤ 1024 bytes of UTF-8, no controls  ...
///     +---------------------------------------------------------------+
/// reason: 1 authentication failed, 2 too many sessions, 3 no leader, 4 protocol version,
/// 5 shutting down, 6 session not open (a reattach). length = 24 + detailLen.
/// ```
public struct ConnectRejectedFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 24

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .connectRejected, minimumLength: Self.fixedBytes)
        let reason = frame.wireLoad(UInt16.self, at: 16), detailLength = Int(frame.wireLoad(UInt16.self, at: 18))
        try FrameCheck.require(ConnectRejection(rawValue: reason) != nil, "reason", Int64(reason))
        try FrameCheck.require(detailLength <= WireProtocol.maxDetailBytes, "detailLength", Int64(detailLength))
        try FrameCheck.reservedZero(frame, at: 20, count: 4)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: detailLength)
        try FrameCheck.text(frame.wireSlice(at: Self.fixedBytes, count: detailLength), "detail")
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    public var reason: ConnectRejection { ConnectRejection(rawValue: bytes.wireLoad(UInt16.self, at: 16))! }
    /// The detail's bytes, in place.
    public var detailBytes: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }
    /// The detail as a string (allocates).
    public var detail: String { String(decoding: detailBytes, as: UTF8.self) }

    /// The frame length for a detail of `detailByteCount` bytes.
    public static func encodedLength(detailByteCount: Int) -> Int { fixedBytes + detailByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, reason: ConnectRejection, detail: UnsafeRawBufferPointer
    ) -> Int {
        precondition(detail.count <= WireProtocol.maxDetailBytes, "rejection detail too long")
        let length = fixedBytes + detail.count
        FrameHeader.write(into: buffer, length: length, type: .connectRejected)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(reason.rawValue, at: 16)
        buffer.wireStore(UInt16(detail.count), at: 18)
        buffer.wireStore(UInt32(0), at: 20)
        buffer.wireCopy(detail, at: fixedBytes)
        return length
    }
}
