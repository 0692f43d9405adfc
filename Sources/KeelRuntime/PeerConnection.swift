import KeelCore
import KeelWire

/// One connection the consensus agent serves: to another member (either direction) or from a client.
/// Owns its receive decoder and its bounded send queue; both buffers must outlive every operation
/// submitted on them, so a closed connection is kept (as a "closing" one) until its last
/// completion has been reaped.
final class PeerConnection {
    enum Kind: Equatable {
        /// This member connected out to `member` (lower id connects to higher).
        case memberOutbound(MemberID)
        /// Another member connected in; its id is known after its handshake.
        case memberInbound
        /// A client.
        case client
    }

    let id: ConnectionID
    let kind: Kind
    /// Distinguishes this connection's completions from those of an earlier connection that had
    /// the same id (io_uring ids are descriptors, which are reused).
    let serial: UInt64
    let decoder: FrameStreamDecoder
    let sendQueue: SendQueue
    /// The member at the other end, once its handshake was accepted (or the outbound target).
    var member: MemberID?
    /// Handshake done (and, with a cluster secret, the peer's proof verified): Raft frames may flow.
    var isEstablished = false
    /// Member, with a cluster secret: the nonces exchanged so far.
    var memberAuthentication: MemberAuthentication?
    /// An outbound connect completed.
    var isConnected: Bool
    var receiveInFlight = false
    var isClosed = false
    /// Close once everything queued has been sent (after a redirect or refusal).
    var closeAfterFlush = false
    /// Client: frames left in the decoder because the ingress batch was full.
    var hasUndrainedFrames = false
    /// Client: sessions routed to this connection (opened or reattached through it).
    var sessionIDs: [Int64] = []
    /// Client: who the authenticator said it is, once it accepted the connection.
    var principal: [UInt8]?
    /// Client: a connect or reattach waiting for the answer to a challenge.
    var pendingAuthentication: PendingAuthentication?

    init(id: ConnectionID, kind: Kind, serial: UInt64, maxFrameBytes: Int, sendQueueBytes: Int, connected: Bool) {
        self.id = id
        self.kind = kind
        self.serial = serial
        self.isConnected = connected
        decoder = FrameStreamDecoder(maxFrameLengthBytes: maxFrameBytes, capacityBytes: max(maxFrameBytes * 2, 256 << 10))
        sendQueue = SendQueue(capacityBytes: sendQueueBytes)
        if case .memberOutbound(let target) = kind { member = target }
    }

    /// Nothing of this connection is with the kernel any more.
    var isIdle: Bool { !receiveInFlight && !sendQueue.isSending }
}

/// Packs (operation, connection serial, connection id) into an `IOToken` of 48 bits.
enum NetworkToken {
    enum Operation: UInt64 {
        case acceptMember = 1, acceptClient, connect, send, receive
    }

    static func make(_ operation: Operation, serial: UInt64 = 0, connection: ConnectionID? = nil) -> IOToken {
        let raw = UInt64(UInt32(bitPattern: connection?.rawValue ?? 0))
        return IOToken(operation.rawValue << 44 | (serial & 0xFFF) << 32 | raw)
    }

    static func operation(_ token: IOToken) -> Operation? { Operation(rawValue: (token.rawValue >> 44) & 0xF) }
    static func serial(_ token: IOToken) -> UInt64 { (token.rawValue >> 32) & 0xFFF }
    static func connection(_ token: IOToken) -> Int32 { Int32(bitPattern: UInt32(token.rawValue & 0xFFFF_FFFF)) }
}
