// Operator → member requests (`keel tool`) and their answers: a type and a small body.

/// What an admin request asks for.
public enum AdminRequestType: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// Describe the member: role, term, positions (body of the response: text).
    case describe = 1
    /// Take a snapshot now.
    case takeSnapshot = 2
    /// Hand leadership to the member named in the body (an i32 member id, little-endian).
    case transferLeadership = 3
    /// Stop accepting ingress.
    case suspend = 4
    /// Accept ingress again.
    case resume = 5
    /// Shut the cluster down in an orderly way.
    case shutdown = 6

    public var description: String {
        switch self {
        case .describe: "describe"
        case .takeSnapshot: "take-snapshot"
        case .transferLeadership: "transfer-leadership"
        case .suspend: "suspend"
        case .resume: "resume"
        case .shutdown: "shutdown"
        }
    }
}

/// How an admin request ended.
public enum AdminStatus: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    case ok = 0
    /// It was tried and failed; the body says why.
    case failed = 1
    /// Only the leader does this; the body names the leader when known.
    case notLeader = 2
    /// This member does not support the request.
    case unsupported = 3
    /// The connection's principal may not send admin requests.
    case unauthorised = 4

    public var description: String {
        switch self {
        case .ok: "ok"
        case .failed: "failed"
        case .notLeader: "not leader"
        case .unsupported: "unsupported"
        case .unauthorised: "unauthorised"
        }
    }
}

/// Operator → member: an admin request.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x10  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |         correlationID (i64): echoed in the response           |
///     +---------------+---------------+-------------------------------+
///  16 |requestType u16|bodyLen (u16)  |       reserved = 0 (u32)      |
///     +---------------+---------------+-------------------------------+
///  24 |               body: bodyLen ≤ 1024 opaque bytes             ...
///     +---------------------------------------------------------------+
/// requestType: 1 describe, 2 take snapshot, 3 transfer leadership, 4 suspend, 5 resume,
/// 6 shutdown. length = 24 + bodyLen.
/// ```
public struct AdminRequestFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 24

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .adminRequest, minimumLength: Self.fixedBytes)
        let type = frame.wireLoad(UInt16.self, at: 16), bodyLength = Int(frame.wireLoad(UInt16.self, at: 18))
        try FrameCheck.require(AdminRequestType(rawValue: type) != nil, "requestType", Int64(type))
        try FrameCheck.require(bodyLength <= WireProtocol.maxAdminBodyBytes, "bodyLength", Int64(bodyLength))
        try FrameCheck.reservedZero(frame, at: 20, count: 4)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: bodyLength)
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    public var requestType: AdminRequestType { AdminRequestType(rawValue: bytes.wireLoad(UInt16.self, at: 16))! }
    /// The body, in place.
    public var body: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    /// The frame length for a body of `bodyByteCount` bytes.
    public static func encodedLength(bodyByteCount: Int) -> Int { fixedBytes + bodyByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, requestType: AdminRequestType, body: UnsafeRawBufferPointer
    ) -> Int {
        precondition(body.count <= WireProtocol.maxAdminBodyBytes, "admin body too long")
        let length = fixedBytes + body.count
        FrameHeader.write(into: buffer, length: length, type: .adminRequest)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(requestType.rawValue, at: 16)
        buffer.wireStore(UInt16(body.count), at: 18)
        buffer.wireStore(UInt32(0), at: 20)
        buffer.wireCopy(body, at: fixedBytes)
        return length
    }
}

/// Member → operator: the answer to an admin request.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x11  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |              correlationID (i64): the request's               |
///     +---------------+---------------+---------------+---------------+
///  16 |requestType u16| status (u16)  |bodyLen (u16)  | reserved = 0  |
///     +---------------+---------------+---------------+---------------+
///  24 |               body: bodyLen ≤ 1024 opaque bytes             ...
///     +---------------------------------------------------------------+
/// status: 0 ok, 1 failed, 2 not leader, 3 unsupported, 4 unauthorised. length = 24 + bodyLen.
/// ```
public struct AdminResponseFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 24

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .adminResponse, minimumLength: Self.fixedBytes)
        let type = frame.wireLoad(UInt16.self, at: 16), status = frame.wireLoad(UInt16.self, at: 18)
        let bodyLength = Int(frame.wireLoad(UInt16.self, at: 20))
        try FrameCheck.require(AdminRequestType(rawValue: type) != nil, "requestType", Int64(type))
        try FrameCheck.require(AdminStatus(rawValue: status) != nil, "status", Int64(status))
        try FrameCheck.require(bodyLength <= WireProtocol.maxAdminBodyBytes, "bodyLength", Int64(bodyLength))
        try FrameCheck.reservedZero(frame, at: 22, count: 2)
        try FrameCheck.variableLength(frame, fixed: Self.fixedBytes, declared: bodyLength)
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    public var requestType: AdminRequestType { AdminRequestType(rawValue: bytes.wireLoad(UInt16.self, at: 16))! }
    public var status: AdminStatus { AdminStatus(rawValue: bytes.wireLoad(UInt16.self, at: 18))! }
    /// The body, in place.
    public var body: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    /// The frame length for a body of `bodyByteCount` bytes.
    public static func encodedLength(bodyByteCount: Int) -> Int { fixedBytes + bodyByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, requestType: AdminRequestType, status: AdminStatus,
        body: UnsafeRawBufferPointer
    ) -> Int {
        precondition(body.count <= WireProtocol.maxAdminBodyBytes, "admin body too long")
        let length = fixedBytes + body.count
        FrameHeader.write(into: buffer, length: length, type: .adminResponse)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(requestType.rawValue, at: 16)
        buffer.wireStore(status.rawValue, at: 18)
        buffer.wireStore(UInt16(body.count), at: 20)
        buffer.wireStore(UInt16(0), at: 22)
        buffer.wireCopy(body, at: fixedBytes)
        return length
    }
}
