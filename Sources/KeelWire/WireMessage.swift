/// Any one frame, validated and viewed in place: the inbound decoder a connection runs on every
/// frame it receives. Each case holds a flyweight over the frame's bytes (no copy, no allocation);
/// the views are valid as long as those bytes are.
public enum WireMessage {
    case connect(ConnectFrame)
    case connectAccepted(ConnectAcceptedFrame)
    case redirect(RedirectFrame)
    case connectRejected(ConnectRejectedFrame)
    case sessionOpened(SessionOpenedFrame)
    case sessionClosed(SessionClosedFrame)
    case request(RequestFrame)
    case response(ResponseFrame)
    case keepAlive(SessionSignalFrame)
    case close(SessionSignalFrame)
    case reattach(ReattachFrame)
    case requestRejected(RequestRejectedFrame)
    case challenge(AuthenticationExchangeFrame)
    case challengeResponse(AuthenticationExchangeFrame)
    case adminRequest(AdminRequestFrame)
    case adminResponse(AdminResponseFrame)
    case handshake(HandshakeFrame)
    case handshakeRefused(HandshakeRefusedFrame)
    case memberAuthentication(MemberAuthenticationFrame)
    case appendEntries(AppendEntriesFrame)
    case appendResponse(AppendResponseFrame)
    case heartbeat(HeartbeatFrame)
    case heartbeatResponse(HeartbeatResponseFrame)
    case voteRequest(VoteRequestFrame)
    case voteResponse(VoteResponseFrame)
    case timeoutNow(TimeoutNowFrame)
    case snapshotChunk(SnapshotChunkFrame)
    case caughtUp(CaughtUpFrame)
    case snapshotOffer(SnapshotOfferFrame)
    case snapshotAck(SnapshotAckFrame)
    case snapshotAbort(SnapshotAbortFrame)

    /// Inbound decoder: validates `frame` (exactly one whole frame, as `FrameStreamDecoder` yields)
    /// against the layout its type byte names. Throws a typed rejection for anything malformed.
    public init(validating frame: UnsafeRawBufferPointer) throws(WireRejection) {
        guard let header = FrameHeader.peek(frame) else {
            throw .tooShort(length: frame.count, minimum: WireProtocol.headerBytes)
        }
        guard let type = header.type else {
            // Report a framing problem before the type: a length that is wrong means the bytes are
            // not a frame at all.
            guard header.length <= WireProtocol.maxFrameLengthBytes else {
                throw .tooLong(length: header.length, maximum: WireProtocol.maxFrameLengthBytes)
            }
            guard header.length == frame.count else { throw .lengthMismatch(declared: header.length, actual: frame.count) }
            throw .unknownType(header.typeByte)
        }
        switch type {
        case .connect: self = .connect(try ConnectFrame(validating: frame))
        case .connectAccepted: self = .connectAccepted(try ConnectAcceptedFrame(validating: frame))
        case .redirect: self = .redirect(try RedirectFrame(validating: frame))
        case .connectRejected: self = .connectRejected(try ConnectRejectedFrame(validating: frame))
        case .sessionOpened: self = .sessionOpened(try SessionOpenedFrame(validating: frame))
        case .sessionClosed: self = .sessionClosed(try SessionClosedFrame(validating: frame))
        case .request: self = .request(try RequestFrame(validating: frame))
        case .response: self = .response(try ResponseFrame(validating: frame))
        case .keepAlive: self = .keepAlive(try SessionSignalFrame(validating: frame, type: .keepAlive))
        case .close: self = .close(try SessionSignalFrame(validating: frame, type: .close))
        case .reattach: self = .reattach(try ReattachFrame(validating: frame))
        case .requestRejected: self = .requestRejected(try RequestRejectedFrame(validating: frame))
        case .challenge: self = .challenge(try AuthenticationExchangeFrame(validating: frame, type: .challenge))
        case .challengeResponse: self = .challengeResponse(try AuthenticationExchangeFrame(validating: frame, type: .challengeResponse))
        case .adminRequest: self = .adminRequest(try AdminRequestFrame(validating: frame))
        case .adminResponse: self = .adminResponse(try AdminResponseFrame(validating: frame))
        case .handshake: self = .handshake(try HandshakeFrame(validating: frame))
        case .handshakeRefused: self = .handshakeRefused(try HandshakeRefusedFrame(validating: frame))
        case .memberAuthentication: self = .memberAuthentication(try MemberAuthenticationFrame(validating: frame))
        case .appendEntries: self = .appendEntries(try AppendEntriesFrame(validating: frame))
        case .appendResponse: self = .appendResponse(try AppendResponseFrame(validating: frame))
        case .heartbeat: self = .heartbeat(try HeartbeatFrame(validating: frame))
        case .heartbeatResponse: self = .heartbeatResponse(try HeartbeatResponseFrame(validating: frame))
        case .voteRequest: self = .voteRequest(try VoteRequestFrame(validating: frame))
        case .voteResponse: self = .voteResponse(try VoteResponseFrame(validating: frame))
        case .timeoutNow: self = .timeoutNow(try TimeoutNowFrame(validating: frame))
        case .snapshotChunk: self = .snapshotChunk(try SnapshotChunkFrame(validating: frame))
        case .caughtUp: self = .caughtUp(try CaughtUpFrame(validating: frame))
        case .snapshotOffer: self = .snapshotOffer(try SnapshotOfferFrame(validating: frame))
        case .snapshotAck: self = .snapshotAck(try SnapshotAckFrame(validating: frame))
        case .snapshotAbort: self = .snapshotAbort(try SnapshotAbortFrame(validating: frame))
        }
    }

    /// The message's type.
    public var type: MessageType {
        switch self {
        case .connect: .connect
        case .connectAccepted: .connectAccepted
        case .redirect: .redirect
        case .connectRejected: .connectRejected
        case .sessionOpened: .sessionOpened
        case .sessionClosed: .sessionClosed
        case .request: .request
        case .response: .response
        case .keepAlive: .keepAlive
        case .close: .close
        case .reattach: .reattach
        case .requestRejected: .requestRejected
        case .challenge: .challenge
        case .challengeResponse: .challengeResponse
        case .adminRequest: .adminRequest
        case .adminResponse: .adminResponse
        case .handshake: .handshake
        case .handshakeRefused: .handshakeRefused
        case .memberAuthentication: .memberAuthentication
        case .appendEntries: .appendEntries
        case .appendResponse: .appendResponse
        case .heartbeat: .heartbeat
        case .heartbeatResponse: .heartbeatResponse
        case .voteRequest: .voteRequest
        case .voteResponse: .voteResponse
        case .timeoutNow: .timeoutNow
        case .snapshotChunk: .snapshotChunk
        case .caughtUp: .caughtUp
        case .snapshotOffer: .snapshotOffer
        case .snapshotAck: .snapshotAck
        case .snapshotAbort: .snapshotAbort
        }
    }
}
