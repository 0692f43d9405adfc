import KeelCore

// Keeping a session across failover and authenticating it: reattach (a client brings its session to
// a new leader), request-rejected (a retried request whose responses are gone, or a sequence out of
// order), and the challenge exchange of an authenticator that asks before it answers.

/// Client → member: reattach an open session to this member (the new leader after a failover),
/// proving ownership with the secret issued at open. Answered like a connect: redirect, rejected,
/// or connect-accepted followed by session-opened naming the same session.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x0B  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |      correlationID (i64): chosen by the client, echoed back   |
///     +---------------------------------------------------------------+
///  16 |                      sessionID (i64, ≥ 1)                     |
///     +---------------------------------------------------------------+
///  24 |            secret (u64): issued in session-opened             |
///     +-------------------------------+-------------------------------+
///  32 | credentialsLength (u32 ≤ 4096)|      reserved = 0 (u32)       |
///     +-------------------------------+-------------------------------+
///  40 |           credentials: credentialsLength opaque bytes       ...
///     +---------------------------------------------------------------+
/// length = 40 + credentialsLength.
/// ```
public struct ReattachFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 40

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .reattach, minimumLength: Self.fixedBytes)
        let session = frame.wireInt64(at: 16)
        try FrameCheck.require(session >= 1, "sessionID", session)
        let credentialsLength = Int(frame.wireLoad(UInt32.self, at: 32))
        try FrameCheck.require(credentialsLength <= WireProtocol.maxCredentialsBytes, "credentialsLength", Int64(credentialsLength))
        try FrameCheck.reservedZero(frame, at: 36, count: 4)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: credentialsLength)
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    public var sessionID: Int64 { bytes.wireInt64(at: 16) }
    public var secret: UInt64 { bytes.wireLoad(UInt64.self, at: 24) }
    /// The credentials, in place.
    public var credentials: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    /// The frame length for `credentialsByteCount` bytes of credentials.
    public static func encodedLength(credentialsByteCount: Int) -> Int { fixedBytes + credentialsByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, sessionID: Int64, secret: UInt64,
        credentials: UnsafeRawBufferPointer
    ) -> Int {
        precondition(sessionID >= 1, "bad session id")
        precondition(credentials.count <= WireProtocol.maxCredentialsBytes, "credentials too long")
        let length = fixedBytes + credentials.count
        FrameHeader.write(into: buffer, length: length, type: .reattach)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(sessionID, at: 16)
        buffer.wireStore(secret, at: 24)
        buffer.wireStore(UInt32(credentials.count), at: 32)
        buffer.wireStore(UInt32(0), at: 36)
        buffer.wireCopy(credentials, at: fixedBytes)
        return length
    }
}

/// Why a request was not given to the service.
public enum RequestRejection: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// The request was applied before (a retry), but its responses have left the session's
    /// response window: they cannot be sent again.
    case responseNoLongerAvailable = 1
    /// The sequence skips ahead of, or goes back before, what the session expects.
    case sequenceOutOfOrder = 2
    /// The cluster is suspended (`keel tool suspend`): the request was not applied; send it again,
    /// with the same sequence, later (the client retries by itself).
    case clusterSuspended = 3
    /// The cluster is shutting down (`keel tool shutdown`): not applied; retry once it is back.
    case shuttingDown = 4

    public var description: String {
        switch self {
        case .responseNoLongerAvailable: "already applied; response no longer available"
        case .sequenceOutOfOrder: "sequence out of order"
        case .clusterSuspended: "cluster suspended; retry later"
        case .shuttingDown: "cluster shutting down; retry later"
        }
    }
}

/// Leader → client: a request of the session was not given to the service, and why.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x0C  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                      sessionID (i64, ≥ 1)                     |
///     +---------------------------------------------------------------+
///  16 |             sequence (i64, ≥ 1): the request's                |
///     +---------------------------------------------------------------+
///  24 |  expectedSequence (i64, ≥ 1): the next one the session takes  |
///     +---------------+---------------+-------------------------------+
///  32 | reason (u16)  |detailLen (u16)|       reserved = 0 (u32)      |
///     +---------------+---------------+-------------------------------+
///  40 |       detail: detailLen ≤ 1024 bytes of UTF-8, no controls  ...
///     +---------------------------------------------------------------+
/// reason: 1 response no longer available, 2 sequence out of order, 3 cluster suspended (retry),
/// 4 shutting down (retry). length = 40 + detailLen.
/// ```
public struct RequestRejectedFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 40

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .requestRejected, minimumLength: Self.fixedBytes)
        let session = frame.wireInt64(at: 8), sequence = frame.wireInt64(at: 16), expected = frame.wireInt64(at: 24)
        try FrameCheck.require(session >= 1, "sessionID", session)
        try FrameCheck.require(sequence >= 1, "sequence", sequence)
        try FrameCheck.require(expected >= 1, "expectedSequence", expected)
        let reason = frame.wireLoad(UInt16.self, at: 32), detailLength = Int(frame.wireLoad(UInt16.self, at: 34))
        try FrameCheck.require(RequestRejection(rawValue: reason) != nil, "reason", Int64(reason))
        try FrameCheck.require(detailLength <= WireProtocol.maxDetailBytes, "detailLength", Int64(detailLength))
        try FrameCheck.reservedZero(frame, at: 36, count: 4)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: detailLength)
        try FrameCheck.text(frame.wireSlice(at: Self.fixedBytes, count: detailLength), "detail")
        bytes = frame
    }

    public var sessionID: Int64 { bytes.wireInt64(at: 8) }
    public var sequence: Int64 { bytes.wireInt64(at: 16) }
    public var expectedSequence: Int64 { bytes.wireInt64(at: 24) }
    public var reason: RequestRejection { RequestRejection(rawValue: bytes.wireLoad(UInt16.self, at: 32))! }
    /// The detail's bytes, in place.
    public var detailBytes: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }
    /// The detail as a string (allocates).
    public var detail: String { String(decoding: detailBytes, as: UTF8.self) }

    /// The frame length for a detail of `detailByteCount` bytes.
    public static func encodedLength(detailByteCount: Int) -> Int { fixedBytes + detailByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, sessionID: Int64, sequence: Int64, expectedSequence: Int64,
        reason: RequestRejection, detail: UnsafeRawBufferPointer
    ) -> Int {
        precondition(sessionID >= 1 && sequence >= 1 && expectedSequence >= 1, "bad rejected request identity")
        precondition(detail.count <= WireProtocol.maxDetailBytes, "rejection detail too long")
        let length = fixedBytes + detail.count
        FrameHeader.write(into: buffer, length: length, type: .requestRejected)
        buffer.wireStore(sessionID, at: 8)
        buffer.wireStore(sequence, at: 16)
        buffer.wireStore(expectedSequence, at: 24)
        buffer.wireStore(reason.rawValue, at: 32)
        buffer.wireStore(UInt16(detail.count), at: 34)
        buffer.wireStore(UInt32(0), at: 36)
        buffer.wireCopy(detail, at: fixedBytes)
        return length
    }
}

/// Member → client `challenge` (0x0D): the authenticator asks before deciding; client → member
/// `challenge-response` (0x0E): the client's answer. One layout, two types.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version|0x0D/0E|   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |         correlationID (i64): the connect's or reattach's      |
///     +-------------------------------+-------------------------------+
///  16 |     dataLength (u32 ≤ 4096)   |      reserved = 0 (u32)       |
///     +-------------------------------+-------------------------------+
///  24 |                data: dataLength opaque bytes                ...
///     +---------------------------------------------------------------+
/// length = 24 + dataLength.
/// ```
public struct AuthenticationExchangeFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 24

    /// Inbound decoder for `type` (`.challenge` or `.challengeResponse`).
    public init(validating frame: UnsafeRawBufferPointer, type: MessageType) throws(WireRejection) {
        precondition(type == .challenge || type == .challengeResponse, "not an authentication exchange type")
        _ = try FrameCheck.header(frame, expected: type, minimumLength: Self.fixedBytes)
        let dataLength = Int(frame.wireLoad(UInt32.self, at: 16))
        try FrameCheck.require(dataLength <= WireProtocol.maxCredentialsBytes, "dataLength", Int64(dataLength))
        try FrameCheck.reservedZero(frame, at: 20, count: 4)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: dataLength)
        bytes = frame
    }

    /// `.challenge` or `.challengeResponse`.
    public var type: MessageType { MessageType(rawValue: bytes[5])! }
    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    /// The data, in place.
    public var data: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    /// The frame length for `dataByteCount` bytes of data.
    public static func encodedLength(dataByteCount: Int) -> Int { fixedBytes + dataByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, type: MessageType, correlationID: Int64, data: UnsafeRawBufferPointer
    ) -> Int {
        precondition(type == .challenge || type == .challengeResponse, "not an authentication exchange type")
        precondition(data.count <= WireProtocol.maxCredentialsBytes, "authentication data too long")
        let length = fixedBytes + data.count
        FrameHeader.write(into: buffer, length: length, type: type)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(UInt32(data.count), at: 16)
        buffer.wireStore(UInt32(0), at: 20)
        buffer.wireCopy(data, at: fixedBytes)
        return length
    }
}
