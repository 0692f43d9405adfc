import KeelCore

// A client session's traffic: opened/closed events, requests (ingress), responses (egress),
// keep-alives and close. Session ids start at 1; 0 is never a session.

/// Leader → client: the session is open (its open entry is committed), or a reattach to it was
/// accepted. The secret, issued at open, is what a client presents to reattach the session to a
/// new leader (`ReattachFrame`).
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 40           |version| 0x05  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |       correlationID (i64): the connect's or reattach's        |
///     +---------------------------------------------------------------+
///  16 |                      sessionID (i64, ≥ 1)                     |
///     +---------------------------------------------------------------+
///  24 |  timestamp (i64, ≥ 0): cluster time of the open (or reattach) |
///     +---------------------------------------------------------------+
///  32 |               secret (u64): the session's secret              |
///     +---------------------------------------------------------------+  40
/// ```
public struct SessionOpenedFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 40

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .sessionOpened, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let session = frame.wireInt64(at: 16)
        try FrameCheck.require(session >= 1, "sessionID", session)
        try FrameCheck.nonNegative(frame.wireInt64(at: 24), "timestamp")
        bytes = frame
    }

    public var correlationID: Int64 { bytes.wireInt64(at: 8) }
    public var sessionID: Int64 { bytes.wireInt64(at: 16) }
    public var timestamp: ClusterTime { ClusterTime(rawValue: bytes.wireInt64(at: 24)) }
    public var secret: UInt64 { bytes.wireLoad(UInt64.self, at: 32) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, correlationID: Int64, sessionID: Int64, timestamp: ClusterTime, secret: UInt64
    ) -> Int {
        precondition(sessionID >= 1 && timestamp.rawValue >= 0, "bad session open")
        FrameHeader.write(into: buffer, length: length, type: .sessionOpened)
        buffer.wireStore(correlationID, at: 8)
        buffer.wireStore(sessionID, at: 16)
        buffer.wireStore(timestamp.rawValue, at: 24)
        buffer.wireStore(secret, at: 32)
        return length
    }
}

/// Why a session closed.
public enum SessionCloseReason: UInt16, Sendable, CaseIterable, CustomStringConvertible {
    /// The client asked (a `CloseFrame`).
    case clientClosed = 1
    /// No keep-alive or request arrived within the session timeout.
    case timedOut = 2
    /// The service closed it.
    case closedByService = 3
    /// Too many sessions; the oldest idle one made room.
    case evicted = 4
    /// The cluster is shutting down.
    case shutdown = 5

    public var description: String {
        switch self {
        case .clientClosed: "closed by the client"
        case .timedOut: "timed out"
        case .closedByService: "closed by the service"
        case .evicted: "evicted"
        case .shutdown: "cluster shutting down"
        }
    }
}

/// Leader → client: the session is closed (its close entry is committed).
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 32           |version| 0x06  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                      sessionID (i64, ≥ 1)                     |
///     +---------------------------------------------------------------+
///  16 |          timestamp (i64, ≥ 0): cluster time of the close      |
///     +---------------+---------------+-------------------------------+
///  24 | reason (u16)  |reserved = 0   |       reserved = 0 (u32)      |
///     +---------------+---------------+-------------------------------+  32
/// reason: 1 client closed, 2 timed out, 3 closed by service, 4 evicted, 5 shutdown.
/// ```
public struct SessionClosedFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 32

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .sessionClosed, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let session = frame.wireInt64(at: 8), reason = frame.wireLoad(UInt16.self, at: 24)
        try FrameCheck.require(session >= 1, "sessionID", session)
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "timestamp")
        try FrameCheck.require(SessionCloseReason(rawValue: reason) != nil, "reason", Int64(reason))
        try FrameCheck.reservedZero(frame, at: 26, count: 6)
        bytes = frame
    }

    public var sessionID: Int64 { bytes.wireInt64(at: 8) }
    public var timestamp: ClusterTime { ClusterTime(rawValue: bytes.wireInt64(at: 16)) }
    public var reason: SessionCloseReason { SessionCloseReason(rawValue: bytes.wireLoad(UInt16.self, at: 24))! }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, sessionID: Int64, timestamp: ClusterTime, reason: SessionCloseReason
    ) -> Int {
        precondition(sessionID >= 1 && timestamp.rawValue >= 0, "bad session close")
        FrameHeader.write(into: buffer, length: length, type: .sessionClosed)
        buffer.wireStore(sessionID, at: 8)
        buffer.wireStore(timestamp.rawValue, at: 16)
        buffer.wireStore(reason.rawValue, at: 24)
        buffer.wireStore(UInt16(0), at: 26)
        buffer.wireStore(UInt32(0), at: 28)
        return length
    }
}

/// Client → leader: one request of a session (ingress).
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x07  |   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                      sessionID (i64, ≥ 1)                     |
///     +---------------------------------------------------------------+
///  16 |     sequence (i64, ≥ 1): increases by one per request         |
///     +---------------------------------------------------------------+
///  24 |               payload: length - 24 opaque bytes             ...
///     +---------------------------------------------------------------+
/// ```
public struct RequestFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 24
    /// The largest payload one request frame can carry.
    public static let maxPayloadBytes = WireProtocol.maxFrameLengthBytes - fixedBytes

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .request, minimumLength: Self.fixedBytes)
        let session = frame.wireInt64(at: 8), sequence = frame.wireInt64(at: 16)
        try FrameCheck.require(session >= 1, "sessionID", session)
        try FrameCheck.require(sequence >= 1, "sequence", sequence)
        bytes = frame
    }

    public var sessionID: Int64 { bytes.wireInt64(at: 8) }
    public var sequence: Int64 { bytes.wireInt64(at: 16) }
    /// The payload, in place.
    public var payload: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    /// The frame length for a payload of `payloadByteCount` bytes.
    public static func encodedLength(payloadByteCount: Int) -> Int { fixedBytes + payloadByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, sessionID: Int64, sequence: Int64, payload: UnsafeRawBufferPointer
    ) -> Int {
        precondition(sessionID >= 1 && sequence >= 1, "bad request identity")
        precondition(payload.count <= maxPayloadBytes, "request payload larger than one frame")
        let length = fixedBytes + payload.count
        FrameHeader.write(into: buffer, length: length, type: .request)
        buffer.wireStore(sessionID, at: 8)
        buffer.wireStore(sequence, at: 16)
        buffer.wireCopy(payload, at: fixedBytes)
        return length
    }
}

/// Leader → client: a message from the service to a session (egress), usually a request's response.
/// Flag bit 0 (`resent`) marks a response sent again from the session's response window because
/// its request was retried; a client that already has the request's responses drops it.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length (u32)          |version| 0x08  |     flags     |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                      sessionID (i64, ≥ 1)                     |
///     +---------------------------------------------------------------+
///  16 | sequence (i64, ≥ 0): the request answered; 0 when unsolicited |
///     +---------------------------------------------------------------+
///  24 |     timestamp (i64, ≥ 0): cluster time of the entry applied   |
///     +---------------------------------------------------------------+
///  32 |               payload: length - 32 opaque bytes             ...
///     +---------------------------------------------------------------+
/// ```
public struct ResponseFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let fixedBytes = 32
    /// The largest payload one response frame can carry.
    public static let maxPayloadBytes = WireProtocol.maxFrameLengthBytes - fixedBytes

    /// Inbound decoder.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        _ = try FrameCheck.header(frame, expected: .response, minimumLength: Self.fixedBytes, allowedFlags: Self.resentFlag)
        let session = frame.wireInt64(at: 8)
        try FrameCheck.require(session >= 1, "sessionID", session)
        try FrameCheck.nonNegative(frame.wireInt64(at: 16), "sequence")
        try FrameCheck.nonNegative(frame.wireInt64(at: 24), "timestamp")
        bytes = frame
    }

    public var sessionID: Int64 { bytes.wireInt64(at: 8) }
    public var sequence: Int64 { bytes.wireInt64(at: 16) }
    public var timestamp: ClusterTime { ClusterTime(rawValue: bytes.wireInt64(at: 24)) }
    /// Sent again from the response window (the request was retried).
    public var isResent: Bool { bytes.wireLoad(UInt16.self, at: 6) & Self.resentFlag != 0 }
    /// The payload, in place.
    public var payload: UnsafeRawBufferPointer { bytes.wireSlice(at: Self.fixedBytes, count: bytes.count - Self.fixedBytes) }

    static let resentFlag: UInt16 = 1

    /// The frame length for a payload of `payloadByteCount` bytes.
    public static func encodedLength(payloadByteCount: Int) -> Int { fixedBytes + payloadByteCount }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(
        into buffer: UnsafeMutableRawBufferPointer, sessionID: Int64, sequence: Int64, timestamp: ClusterTime,
        payload: UnsafeRawBufferPointer, resent: Bool = false
    ) -> Int {
        precondition(sessionID >= 1 && sequence >= 0 && timestamp.rawValue >= 0, "bad response identity")
        precondition(payload.count <= maxPayloadBytes, "response payload larger than one frame")
        let length = fixedBytes + payload.count
        FrameHeader.write(into: buffer, length: length, type: .response, flags: resent ? resentFlag : 0)
        buffer.wireStore(sessionID, at: 8)
        buffer.wireStore(sequence, at: 16)
        buffer.wireStore(timestamp.rawValue, at: 24)
        buffer.wireCopy(payload, at: fixedBytes)
        return length
    }
}

/// Client → leader: a session-only frame — `keepAlive` (0x09, "I am still here") or `close`
/// (0x0A, "close my session"). One layout, two types.
///
/// ```
///         0       1       2       3       4       5       6       7
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   0 |         length = 16           |version|0x09/0A|   flags = 0   |
///     +-------+-------+-------+-------+-------+-------+-------+-------+
///   8 |                      sessionID (i64, ≥ 1)                     |
///     +---------------------------------------------------------------+  16
/// ```
public struct SessionSignalFrame {
    public let bytes: UnsafeRawBufferPointer
    public static let length = 16

    /// Inbound decoder for `type` (`.keepAlive` or `.close`).
    public init(validating frame: UnsafeRawBufferPointer, type: MessageType) throws(WireRejection) {
        precondition(type == .keepAlive || type == .close, "not a session signal type")
        _ = try FrameCheck.header(frame, expected: type, minimumLength: Self.length)
        try FrameCheck.variableLength(frame, fixed: Self.length, declared: 0)
        let session = frame.wireInt64(at: 8)
        try FrameCheck.require(session >= 1, "sessionID", session)
        bytes = frame
    }

    /// `.keepAlive` or `.close`.
    public var type: MessageType { MessageType(rawValue: bytes[5])! }
    public var sessionID: Int64 { bytes.wireInt64(at: 8) }

    /// Outbound encoder; returns the frame length.
    @discardableResult
    public static func encode(into buffer: UnsafeMutableRawBufferPointer, type: MessageType, sessionID: Int64) -> Int {
        precondition(type == .keepAlive || type == .close, "not a session signal type")
        precondition(sessionID >= 1, "bad session id")
        FrameHeader.write(into: buffer, length: length, type: type)
        buffer.wireStore(sessionID, at: 8)
        return length
    }
}
