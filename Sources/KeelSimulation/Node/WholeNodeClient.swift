import KeelCore
import KeelRuntime
import KeelWire

/// The simulation's client: speaks the wire protocol over a simulated transport, follows
/// redirects, opens a session, keeps a window of keyed requests outstanding, and after a failover
/// or a silent timeout reattaches the session and resends every unacknowledged request with its
/// original sequence (exactly-once). Every key is sent with one sequence, ever, unless the cluster
/// closes the session: then the keys outstanding go out again in a new session and are marked as
/// possibly applied twice.
final class WholeNodeClient {
    let transport: SimulatedTransport
    let endpoints: [MemberEndpoint]
    let time: SimulatedTimeSource
    let requestCount: Int
    let windowRequests: Int
    var fillerBytes: [Int]

    var connection: ConnectionID?
    let decoder = FrameStreamDecoder(maxFrameLengthBytes: 1 << 20)
    var completions = IOCompletionBuffer(capacity: 256)
    /// Sends handed to the transport, by token: each buffer stays valid until its completion is reaped.
    var sendsInFlight: [UInt64: (buffer: UnsafeMutableRawBufferPointer, connection: ConnectionID)] = [:]
    var nextSendToken: UInt64 = 1000
    /// Bytes for the current connection not yet handed to the transport. One send is in flight at
    /// a time: a send may take only part of its bytes, and the rest must go before anything later.
    var outgoing: [UInt8] = []
    var sendInFlight = false
    var receiving = false
    var sessionID: Int64?
    var secret: UInt64 = 0
    /// The session is open on the current connection.
    var attached = false
    var nextSequence: Int64 = 1
    /// The sequence each sent key carries in the current session.
    var sequenceOfKey: [Int64: Int64] = [:]
    /// Keys outstanding when the cluster closed a session: a new session may apply them again.
    private(set) var keysMaybeAppliedTwice = Set<Int64>()
    /// Sessions the cluster closed under the client.
    private(set) var sessionsLost = 0
    var target = 0
    var retryAtNanos: Int64 = 0
    var lastProgressNanos: Int64 = 0
    /// Requests sent in the current session, not yet acknowledged.
    var outstanding: [Int64] = []
    /// Requests to send again (from sessions that ended).
    var resend: [Int64] = []
    var nextKey: Int64 = 0
    /// Keys acknowledged, in order of first acknowledgement.
    private(set) var acknowledged: [Int64] = []
    var acknowledgedSet = Set<Int64>()
    /// Set when a response does not match any request sent.
    var protocolViolation: String?
    /// Retried requests whose responses had left the window.
    private(set) var responsesUnavailable = 0
    /// Requests refused because the cluster was suspended (each re-sent later).
    private(set) var requestsRefused = 0
    /// Called at each first acknowledgement of a key.
    var onAcknowledged: ((Int64) -> Void)?
    /// Whether new keys may be sent (false while the simulation waits for convergence only).
    var sendingNewKeys = true
    /// New keys are spread over this much virtual time, so traffic runs through the fault phase.
    var spreadNanos: Int64 = 0

    init(network: SimulatedNetwork, endpoints: [MemberEndpoint], time: SimulatedTimeSource, requestCount: Int, windowRequests: Int, random: inout SeededRandom) {
        transport = network.makeTransport(host: "10.0.1.1")
        self.endpoints = endpoints
        self.time = time
        self.requestCount = requestCount
        self.windowRequests = windowRequests
        // Mostly small requests, some large enough that batches split frames across appends.
        fillerBytes = (0..<requestCount).map { _ in random.chance(0.2) ? Int(random.integer(in: 2_000...60_000)) : Int(random.integer(in: 0...200)) }
    }

    deinit {
        for send in sendsInFlight.values { send.buffer.deallocate() }
    }

    var isDone: Bool { acknowledgedSet.count == requestCount }

    func payload(forKey key: Int64) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: key &* 37), count: 8 + fillerBytes[Int(key)])
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: key.littleEndian, as: Int64.self) }
        return bytes
    }

    func start(at index: Int) {
        target = index
        attached = false
        receiving = false
        decoder.reset()
        outgoing.removeAll()
        sendInFlight = false
        lastProgressNanos = time.nowNanos
        connection = try? transport.submitConnect(host: endpoints[index].host, port: endpoints[index].clientPort, token: IOToken(1))
    }

    private func send(_ frame: [UInt8]) {
        guard connection != nil else { return }
        outgoing.append(contentsOf: frame)
        flushOutgoing()
    }

    private func flushOutgoing() {
        guard let connection, !sendInFlight, !outgoing.isEmpty else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: outgoing.count, alignment: 8)
        buffer.copyBytes(from: outgoing)
        outgoing.removeAll(keepingCapacity: true)
        let token = nextSendToken
        nextSendToken += 1
        sendsInFlight[token] = (buffer, connection)
        sendInFlight = true
        do {
            try transport.submitSend(connection, UnsafeRawBufferPointer(buffer), token: IOToken(token))
        } catch {
            sendsInFlight.removeValue(forKey: token)?.buffer.deallocate()
            sendInFlight = false
            failed()
        }
    }

    /// A send finished: what it did not take goes out first, before anything queued after it.
    private func sendCompleted(_ completion: IOCompletion) {
        guard let send = sendsInFlight.removeValue(forKey: completion.token.rawValue) else { return }
        defer { send.buffer.deallocate() }
        guard send.connection == connection else { return }  // an earlier connection's
        sendInFlight = false
        guard completion.result > 0 else { failed(); return }
        let taken = Int(completion.result)
        if taken < send.buffer.count { outgoing.insert(contentsOf: send.buffer[taken...], at: 0) }
        flushOutgoing()
    }

    private func request(key: Int64) {
        guard let sessionID else { return }
        let sequence: Int64
        if let original = sequenceOfKey[key] {
            sequence = original
        } else {
            sequence = nextSequence
            sequenceOfKey[key] = sequence
            nextSequence += 1
        }
        let payload = payload(forKey: key)
        var frame = [UInt8](repeating: 0, count: RequestFrame.encodedLength(payloadByteCount: payload.count))
        frame.withUnsafeMutableBytes { buffer in
            payload.withUnsafeBytes { _ = RequestFrame.encode(into: buffer, sessionID: sessionID, sequence: sequence, payload: $0) }
        }
        outstanding.append(key)
        send(frame)
    }

    /// Keeps the window full: resends first (in their original order), then new keys.
    private func pump() {
        guard attached else { return }
        while outstanding.count < windowRequests {
            if !resend.isEmpty {
                request(key: resend.removeFirst())
            } else if sendingNewKeys && nextKey < Int64(requestCount) && time.nowNanos >= nextKey * spreadNanos / Int64(requestCount) {
                request(key: nextKey)
                nextKey += 1
            } else {
                return
            }
        }
    }

    func poll() {
        completions.removeAll()
        transport.reapCompletions(into: &completions)
        for index in 0..<completions.count {
            let completion = completions[index]
            switch completion.token.rawValue {
            case 1:
                guard completion.succeeded else { failed(); continue }
                let none = UnsafeRawBufferPointer(start: nil, count: 0)
                var frame = [UInt8](repeating: 0, count: ReattachFrame.encodedLength(credentialsByteCount: 0))
                let length = frame.withUnsafeMutableBytes { buffer in
                    if let sessionID { ReattachFrame.encode(into: buffer, correlationID: 77, sessionID: sessionID, secret: secret, credentials: none) }
                    else { ConnectFrame.encode(into: buffer, correlationID: 77, credentials: none) }
                }
                send(Array(frame[0..<length]))
                postReceive()
            case 2:
                receiving = false
                guard completion.result > 0 else { failed(); continue }
                decoder.didReceive(byteCount: Int(completion.result))
                handleFrames()
                postReceive()
            default:
                sendCompleted(completion)
            }
        }
        // A leader that lost its leadership may drop requests silently: give up on it after a while.
        let waiting = !attached || !outstanding.isEmpty
        if connection != nil && waiting && time.nowNanos - lastProgressNanos > 1_500_000_000 { failed() }
        if connection == nil && time.nowNanos >= retryAtNanos { start(at: target) }
        pump()
    }

    private func postReceive() {
        guard let connection, !receiving else { return }
        receiving = true
        try? transport.submitReceive(connection, into: decoder.receiveSpace(), token: IOToken(2))
    }

    /// The connection is gone; the session stays (to be reattached).
    private func endSession() {
        resend = outstanding.filter { !acknowledgedSet.contains($0) } + resend
        outstanding.removeAll()
        attached = false
    }

    /// The cluster closed the session: what is outstanding goes out again in a new one, and may
    /// then be applied twice (once per session) — the one case exactly-once does not cover.
    private func sessionLost() {
        sessionsLost += 1
        for key in outstanding + resend where !acknowledgedSet.contains(key) { keysMaybeAppliedTwice.insert(key) }
        sessionID = nil
        sequenceOfKey.removeAll()
        nextSequence = 1
        failed()
    }

    private func failed() {
        if let connection { transport.close(connection) }
        connection = nil
        endSession()
        target = (target + 1) % endpoints.count
        retryAtNanos = time.nowNanos + 50_000_000
    }

    private func handleFrames() {
        while let frame = try? decoder.nextFrame() {
            guard let message = try? WireMessage(validating: frame) else { failed(); return }
            switch message {
            case .redirect(let redirect):
                if let connection { transport.close(connection) }
                connection = nil
                endSession()
                target = Int(redirect.leaderMemberID.rawValue)
                retryAtNanos = time.nowNanos
                return
            case .connectRejected(let rejected):
                if rejected.reason == .sessionNotOpen { sessionLost() } else { failed() }
                return
            case .sessionOpened(let opened):
                if let sessionID, opened.sessionID != sessionID {
                    protocolViolation = "reattached session \(sessionID), the leader named \(opened.sessionID)"
                }
                sessionID = opened.sessionID
                secret = opened.secret
                attached = true
                lastProgressNanos = time.nowNanos
            case .response(let response):
                lastProgressNanos = time.nowNanos
                acknowledge(Array(response.payload))
            case .requestRejected(let rejected):
                lastProgressNanos = time.nowNanos
                if rejected.reason == .clusterSuspended {
                    // Not applied: reattach after a pause and re-send from it, in order (what was
                    // sent after it could meet a resumed cluster and be refused as out of order).
                    requestsRefused += 1
                    failed()
                    return
                }
                guard rejected.reason == .responseNoLongerAvailable,
                    let key = sequenceOfKey.first(where: { $0.value == rejected.sequence })?.key
                else {
                    protocolViolation = "request-rejected: \(rejected.detail)"
                    return
                }
                responsesUnavailable += 1
                acknowledge(payload(forKey: key))
            case .sessionClosed:
                sessionLost()
                return
            default:
                break
            }
        }
    }

    private func acknowledge(_ payload: [UInt8]) {
        guard payload.count >= 8 else { protocolViolation = "a response of \(payload.count) bytes matches no request"; return }
        let key = payload.withUnsafeBytes { Int64(littleEndian: $0.loadUnaligned(as: Int64.self)) }
        guard key >= 0, key < Int64(requestCount), payload == self.payload(forKey: key) else {
            protocolViolation = "a response (key \(key), \(payload.count) bytes) is not the echo of a request sent"
            return
        }
        if let index = outstanding.firstIndex(of: key) { outstanding.remove(at: index) }
        if acknowledgedSet.insert(key).inserted {
            acknowledged.append(key)
            onAcknowledged?(key)
        }
    }
}
