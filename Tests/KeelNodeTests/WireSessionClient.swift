import Glibc
import KeelCore
import KeelIO
import KeelWire

/// A client that speaks the client wire protocol by hand over blocking loopback sockets, so a
/// test can do what `ClusterClient` never does: send a request twice, cut the connection right
/// after a send, reattach with a wrong secret, send raw bytes as a request.
final class WireSessionClient {
    /// What a connect or reattach came to.
    enum Attach: Equatable {
        case attached
        case rejected(ConnectRejection, String)
    }

    /// One frame from the cluster, copied out of the receive buffer.
    enum Inbound: Equatable {
        case response(sequence: Int64, payload: [UInt8], resent: Bool)
        case requestRejected(sequence: Int64, expected: Int64, reason: RequestRejection)
        case sessionClosed(SessionCloseReason)
        case challenge([UInt8])
        case other(MessageType)
    }

    let clientPorts: [UInt16]
    var credentials: [UInt8]
    private(set) var sessionID: Int64 = 0
    var secret: UInt64 = 0
    private(set) var leaderIndex = 0
    private var socket: Int32 = -1
    private let decoder = FrameStreamDecoder(maxFrameLengthBytes: 1 << 20)
    private let clock = SystemClock()

    init(clientPorts: [UInt16], credentials: [UInt8] = []) {
        self.clientPorts = clientPorts
        self.credentials = credentials
    }

    deinit { cut() }

    var isConnected: Bool { socket >= 0 }

    /// Takes a session id and secret learnt elsewhere: the next `attach` reattaches that session.
    func adopt(sessionID: Int64, secret: UInt64) {
        self.sessionID = sessionID
        self.secret = secret
    }

    /// Closes the connection at once (what is in flight may or may not reach the leader).
    func cut() {
        if socket >= 0 { close(socket) }
        socket = -1
        decoder.reset()
    }

    /// Finds the leader (following redirects, trying every member, waiting out elections) and
    /// opens a session, or reattaches the one it has. A refusal other than "no leader" is returned.
    func attach(timeoutNanos: Int64 = 20_000_000_000) throws -> Attach {
        let deadline = clock.monotonicNanos() + timeoutNanos
        var lastProblem = "no attempt"
        while clock.monotonicNanos() < deadline {
            cut()
            guard let descriptor = try? RawConnection.connectLoopback(port: clientPorts[leaderIndex], receiveTimeoutMillis: 200) else {
                lastProblem = "member \(leaderIndex) refused the TCP connect"
                leaderIndex = (leaderIndex + 1) % clientPorts.count
                usleep(50_000)
                continue
            }
            socket = descriptor
            sendConnectOrReattach()
            switch awaitAttach(until: min(deadline, clock.monotonicNanos() + 3_000_000_000)) {
            case .attached:
                return .attached
            case .rejected(let reason, let detail) where reason != .noLeader:
                cut()
                return .rejected(reason, detail)
            case .rejected(_, let detail):
                lastProblem = detail
                usleep(50_000)
            case .redirected:
                continue  // to the leader it named, at once
            case nil:
                lastProblem = "member \(leaderIndex) gave no session"
                leaderIndex = (leaderIndex + 1) % clientPorts.count
                usleep(20_000)
            }
        }
        throw HarnessError.timeout("no session within \(timeoutNanos / 1_000_000) ms: \(lastProblem)")
    }

    private func sendConnectOrReattach() {
        var frame = [UInt8](repeating: 0, count: ReattachFrame.encodedLength(credentialsByteCount: credentials.count))
        let length = frame.withUnsafeMutableBytes { buffer in
            credentials.withUnsafeBytes { credentials in
                sessionID > 0
                    ? ReattachFrame.encode(into: buffer, correlationID: 1, sessionID: sessionID, secret: secret, credentials: credentials)
                    : ConnectFrame.encode(into: buffer, correlationID: 1, credentials: credentials)
            }
        }
        send(Array(frame[0..<length]))
    }

    private enum AttachStep {
        case attached
        case rejected(ConnectRejection, String)
        case redirected
    }

    /// Reads until session-opened (attached), a refusal, a redirect (the leader it names is the
    /// next target) or the connection's end (nil).
    private func awaitAttach(until deadline: Int64) -> AttachStep? {
        while clock.monotonicNanos() < deadline {
            guard receiveSome() else { return nil }
            while let frame = try? decoder.nextFrame() {
                guard let message = try? WireMessage(validating: frame) else { return nil }
                switch message {
                case .redirect(let redirect):
                    leaderIndex = Int(redirect.leaderMemberID.rawValue)
                    return .redirected
                case .connectRejected(let rejected):
                    return .rejected(rejected.reason, rejected.detail)
                case .sessionOpened(let opened):
                    sessionID = opened.sessionID
                    secret = opened.secret
                    return .attached
                default:
                    continue  // connect-accepted comes first
                }
            }
        }
        return nil
    }

    /// One read into the decoder; false when the connection ended or failed.
    private func receiveSome() -> Bool {
        guard socket >= 0 else { return false }
        let space = decoder.receiveSpace()
        let received = recv(socket, space.baseAddress, space.count, 0)
        if received > 0 {
            decoder.didReceive(byteCount: received)
            return true
        }
        return received < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)  // a receive timeout: keep waiting
    }

    func send(_ bytes: [UInt8]) {
        guard socket >= 0 else { return }
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(socket, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent > 0 else { return }
            offset += sent
        }
    }

    /// Sends request `sequence` of the session with `payload`, `copies` times in a row.
    func sendRequest(sequence: Int64, payload: [UInt8], copies: Int = 1) {
        var frame = [UInt8](repeating: 0, count: RequestFrame.encodedLength(payloadByteCount: payload.count))
        frame.withUnsafeMutableBytes { buffer in
            payload.withUnsafeBytes { _ = RequestFrame.encode(into: buffer, sessionID: sessionID, sequence: sequence, payload: $0) }
        }
        for _ in 0..<copies { send(frame) }
    }

    /// Sends a keep-alive or close signal for the session.
    func sendSignal(_ type: MessageType) {
        var frame = [UInt8](repeating: 0, count: SessionSignalFrame.length)
        frame.withUnsafeMutableBytes { _ = SessionSignalFrame.encode(into: $0, type: type, sessionID: sessionID) }
        send(frame)
    }

    /// The next frame within `timeoutNanos`, or nil when none came or the connection ended.
    func next(timeoutNanos: Int64) -> Inbound? {
        let deadline = clock.monotonicNanos() + timeoutNanos
        repeat {
            if let frame = try? decoder.nextFrame() {
                guard let message = try? WireMessage(validating: frame) else { return nil }
                switch message {
                case .response(let response):
                    return .response(sequence: response.sequence, payload: Array(response.payload), resent: response.isResent)
                case .requestRejected(let rejected):
                    return .requestRejected(sequence: rejected.sequence, expected: rejected.expectedSequence, reason: rejected.reason)
                case .sessionClosed(let closed):
                    return .sessionClosed(closed.reason)
                case .challenge(let challenge):
                    return .challenge(Array(challenge.data))
                default:
                    return .other(message.type)
                }
            }
            guard receiveSome() else { return nil }
        } while clock.monotonicNanos() < deadline
        return nil
    }
}
