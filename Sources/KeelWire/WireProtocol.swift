// The constants and message-type numbers of Keel's wire protocol (DESIGN.md decision 12).
// Every layout is drawn in docs/wire-protocol.md and next to its codec.

/// Protocol-wide constants.
public enum WireProtocol {
    /// The protocol version this build speaks, carried in every frame header.
    /// Bump it whenever any layout (other than the frozen handshake layouts) changes.
    /// Version 2 gained, without a bump, the optional member-authentication frame (0x22): no layout
    /// changed, and only members configured with a cluster secret send it.
    public static let version: UInt8 = 2
    /// Bytes of the frame header every frame begins with.
    public static let headerBytes = 8
    /// The largest frame any decoder accepts, whatever its own configured limit (16 MiB).
    /// A stream decoder usually applies a smaller limit of its own.
    public static let maxFrameLengthBytes = 16 << 20
    /// The most credential bytes a connect may carry.
    public static let maxCredentialsBytes = 4096
    /// The most bytes of human-readable detail a refusal or rejection may carry.
    public static let maxDetailBytes = 1024
    /// The most body bytes an admin request or response may carry.
    public static let maxAdminBodyBytes = 1024
    /// The longest host name a redirect may carry.
    public static let maxHostBytes = 255
}

/// The type byte of a frame header. Ranges: 0x01–0x0F client, 0x10–0x1F admin, 0x20–0x2F member
/// handshake, 0x30–0x3F Raft and snapshot transfer. 0x00 is never a valid type (zeroed memory is
/// not a frame).
public enum MessageType: UInt8, Sendable, CaseIterable, CustomStringConvertible {
    // Client ⇄ cluster.
    case connect = 0x01
    case connectAccepted = 0x02
    case redirect = 0x03
    case connectRejected = 0x04
    case sessionOpened = 0x05
    case sessionClosed = 0x06
    case request = 0x07
    case response = 0x08
    case keepAlive = 0x09
    case close = 0x0A
    case reattach = 0x0B
    case requestRejected = 0x0C
    case challenge = 0x0D
    case challengeResponse = 0x0E
    // Operator ⇄ member.
    case adminRequest = 0x10
    case adminResponse = 0x11
    // Member ⇄ member, first frames on a connection.
    case handshake = 0x20
    case handshakeRefused = 0x21
    case memberAuthentication = 0x22
    // Member ⇄ member: the Raft core's messages and snapshot transfer.
    case appendEntries = 0x30
    case appendResponse = 0x31
    case heartbeat = 0x32
    case heartbeatResponse = 0x33
    case voteRequest = 0x34
    case voteResponse = 0x35
    case timeoutNow = 0x36
    case snapshotChunk = 0x37
    case caughtUp = 0x38
    case snapshotOffer = 0x39
    case snapshotAck = 0x3A
    case snapshotAbort = 0x3B

    /// True for the handshake layouts, which are frozen across protocol versions so that peers of
    /// different versions can still tell each other precisely why they cannot talk.
    public var isVersionIndependent: Bool { self == .handshake || self == .handshakeRefused }

    public var description: String {
        switch self {
        case .connect: "connect"
        case .connectAccepted: "connect-accepted"
        case .redirect: "redirect"
        case .connectRejected: "connect-rejected"
        case .sessionOpened: "session-opened"
        case .sessionClosed: "session-closed"
        case .request: "request"
        case .response: "response"
        case .keepAlive: "keep-alive"
        case .close: "close"
        case .reattach: "reattach"
        case .requestRejected: "request-rejected"
        case .challenge: "challenge"
        case .challengeResponse: "challenge-response"
        case .adminRequest: "admin-request"
        case .adminResponse: "admin-response"
        case .handshake: "handshake"
        case .handshakeRefused: "handshake-refused"
        case .memberAuthentication: "member-authentication"
        case .appendEntries: "append-entries"
        case .appendResponse: "append-response"
        case .heartbeat: "heartbeat"
        case .heartbeatResponse: "heartbeat-response"
        case .voteRequest: "vote-request"
        case .voteResponse: "vote-response"
        case .timeoutNow: "timeout-now"
        case .snapshotChunk: "snapshot-chunk"
        case .caughtUp: "caught-up"
        case .snapshotOffer: "snapshot-offer"
        case .snapshotAck: "snapshot-ack"
        case .snapshotAbort: "snapshot-abort"
        }
    }
}
