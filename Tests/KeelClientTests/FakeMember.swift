import KeelCore
import KeelPOSIX
import KeelWire

/// A test peer: one cluster member's client port, written with PosixTransport, speaking the real
/// wire protocol. It is not a mock of the client: it is the other end of the socket, with scripted
/// behaviour (redirect, reject, lead and echo, drop the connection, stay silent, send garbage).
final class FakeMember {
    enum Behaviour: Sendable {
        /// Answer connects with a redirect to this leader.
        case redirect(MemberID, host: String, port: UInt16)
        /// Refuse connects.
        case reject(ConnectRejection)
        /// Accept, open a session, and echo every request.
        case lead(MemberID, Term)
        /// Accept and open a session, then never answer a request.
        case silentLead(MemberID, Term)
        /// Send bytes that are not a valid frame in answer to a connect.
        case garbage
    }

    struct Received: Equatable {
        var sessionID: Int64
        var sequence: Int64
        var payload: [UInt8]
    }

    final class Peer {
        let connection: ConnectionID
        let decoder = FrameStreamDecoder(maxFrameLengthBytes: 1 << 20)
        init(connection: ConnectionID) { self.connection = connection }
    }

    var behaviour: Behaviour
    let transport = PosixTransport()
    let listener: ConnectionID
    let port: UInt16
    private var completions = IOCompletionBuffer(capacity: 256)
    private var peers: [Int32: Peer] = [:]
    private var sendBuffers: [UInt64: UnsafeMutableRawBufferPointer] = [:]
    private var nextSendToken: UInt64 = 1
    private var nextSessionID: Int64
    /// Reattach frames received.
    private(set) var reattachesSeen = 0
    /// Every request received, in order.
    private(set) var received: [Received] = []
    private(set) var connectsSeen = 0
    private(set) var keepAlivesSeen = 0
    private(set) var closesSeen = 0
    /// After this many requests in all, the member drops every connection (before answering the
    /// last one) and turns to rejecting connects with `noLeader`: a leader that dies.
    var dropAfterRequests: Int?
    /// A leader: refuses this many requests with `clusterSuspended` (not applied), then serves.
    var refuseRequests = 0
    /// A leader keeping each session's next sequence, as the cluster's session table does: a
    /// request skipping ahead gets `sequenceOutOfOrder`, a retry is answered again flagged resent.
    var checksSequences = false
    private(set) var expectedSequence: [Int64: Int64] = [:]

    init(_ behaviour: Behaviour, firstSessionID: Int64 = 1) throws {
        self.behaviour = behaviour
        nextSessionID = firstSessionID
        listener = try transport.listen(host: "127.0.0.1", port: 0)
        port = try transport.localPort(listener)
        try transport.submitAccept(listener, token: IOToken(1))
    }

    deinit {
        for peer in peers.values { transport.close(peer.connection) }
        transport.close(listener)
        for buffer in sendBuffers.values { buffer.deallocate() }
    }

    var address: (host: String, port: UInt16) { ("127.0.0.1", port) }
    var openConnections: Int { peers.count }

    /// Moves the member forward without blocking.
    func pump() {
        transport.reapCompletions(into: &completions)
        var batch: [IOCompletion] = []
        for index in 0..<completions.count { batch.append(completions[index]) }
        completions.removeAll()
        for completion in batch { handle(completion) }
    }

    private func handle(_ completion: IOCompletion) {
        let raw = completion.token.rawValue
        if raw == 1 {
            if completion.result >= 0 {
                let peer = Peer(connection: ConnectionID(rawValue: completion.result))
                peers[completion.result] = peer
                receive(peer)
            }
            try? transport.submitAccept(listener, token: IOToken(1))
        } else if raw & 0xFF == 2 {
            let descriptor = Int32(raw >> 32)
            guard let peer = peers[descriptor] else { return }
            guard completion.result > 0 else { return drop(peer) }
            peer.decoder.didReceive(byteCount: Int(completion.result))
            while peers[descriptor] === peer, let frame = try? peer.decoder.nextFrame() {
                guard let message = try? WireMessage(validating: frame) else { return drop(peer) }
                handle(message, from: peer)
            }
            if peers[descriptor] === peer { receive(peer) }
        } else if let buffer = sendBuffers.removeValue(forKey: raw) {
            buffer.deallocate()
        }
    }

    private func receive(_ peer: Peer) {
        let token = IOToken(UInt64(UInt32(bitPattern: peer.connection.rawValue)) << 32 | 2)
        try? transport.submitReceive(peer.connection, into: peer.decoder.receiveSpace(), token: token)
    }

    func drop(_ peer: Peer) {
        peers[peer.connection.rawValue] = nil
        transport.close(peer.connection)
    }

    func dropAll() {
        for peer in peers.values { drop(peer) }
    }

    /// Sends a frame built by `encode` (which returns its length) into a buffer of `capacity`.
    func send(_ peer: Peer, capacity: Int, _ encode: (UnsafeMutableRawBufferPointer) -> Int) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: capacity, alignment: 16)
        let length = encode(buffer)
        nextSendToken += 1
        let token = nextSendToken << 8 | 3
        sendBuffers[token] = buffer
        try? transport.submitSend(peer.connection, UnsafeRawBufferPointer(rebasing: buffer[0..<length]), token: IOToken(token))
    }

    private func handle(_ message: WireMessage, from peer: Peer) {
        switch message {
        case .connect(let connect):
            connectsSeen += 1
            answerConnect(correlationID: connect.correlationID, peer: peer)
        case .reattach(let reattach):
            // A fake member takes any reattach: the session is the client's.
            connectsSeen += 1
            reattachesSeen += 1
            answerConnect(correlationID: reattach.correlationID, peer: peer, reattaching: reattach.sessionID)
        case .request(let request):
            received.append(Received(sessionID: request.sessionID, sequence: request.sequence, payload: Array(request.payload)))
            if let limit = dropAfterRequests, received.count >= limit {
                dropAfterRequests = nil
                behaviour = .reject(.noLeader)
                return dropAll()
            }
            guard case .lead = behaviour else { return }
            let (session, sequence, payload) = (request.sessionID, request.sequence, Array(request.payload))
            let expected = expectedSequence[session, default: 1]
            if refuseRequests > 0 || (checksSequences && sequence > expected) {
                let reason: RequestRejection = refuseRequests > 0 ? .clusterSuspended : .sequenceOutOfOrder
                refuseRequests = max(0, refuseRequests - 1)
                send(peer, capacity: RequestRejectedFrame.fixedBytes) {
                    RequestRejectedFrame.encode(
                        into: $0, sessionID: session, sequence: sequence, expectedSequence: expected, reason: reason,
                        detail: UnsafeRawBufferPointer(start: nil, count: 0))
                }
                return
            }
            if sequence == expected { expectedSequence[session] = expected + 1 }
            let resent = checksSequences && sequence < expected
            send(peer, capacity: ResponseFrame.encodedLength(payloadByteCount: payload.count)) { buffer in
                payload.withUnsafeBytes {
                    ResponseFrame.encode(
                        into: buffer, sessionID: session, sequence: sequence, timestamp: ClusterTime(rawValue: 7), payload: $0, resent: resent)
                }
            }
        case .keepAlive:
            keepAlivesSeen += 1
        case .close(let close):
            closesSeen += 1
            let session = close.sessionID
            send(peer, capacity: SessionClosedFrame.length) {
                SessionClosedFrame.encode(into: $0, sessionID: session, timestamp: ClusterTime(rawValue: 9), reason: .clientClosed)
            }
        default:
            drop(peer)
        }
    }

    private func answerConnect(correlationID: Int64, peer: Peer, reattaching: Int64? = nil) {
        switch behaviour {
        case .redirect(let leader, let host, let port):
            send(peer, capacity: 512) { buffer in
                Array(host.utf8).withUnsafeBytes {
                    RedirectFrame.encode(into: buffer, correlationID: correlationID, leaderTerm: Term(3), leaderMemberID: leader, host: $0, port: port)
                }
            }
        case .reject(let reason):
            send(peer, capacity: 256) { buffer in
                Array("test refusal".utf8).withUnsafeBytes {
                    ConnectRejectedFrame.encode(into: buffer, correlationID: correlationID, reason: reason, detail: $0)
                }
            }
        case .lead(let id, let term), .silentLead(let id, let term):
            let session = reattaching ?? nextSessionID
            if reattaching == nil { nextSessionID += 1 }
            send(peer, capacity: 64) {
                ConnectAcceptedFrame.encode(into: $0, correlationID: correlationID, leaderTerm: term, leaderMemberID: id)
            }
            send(peer, capacity: 64) {
                SessionOpenedFrame.encode(into: $0, correlationID: correlationID, sessionID: session, timestamp: ClusterTime(rawValue: 5), secret: 0x5EC)
            }
        case .garbage:
            send(peer, capacity: 64) { buffer in
                for index in 0..<40 { buffer[index] = 0xEE }
                return 40
            }
        }
    }
}
