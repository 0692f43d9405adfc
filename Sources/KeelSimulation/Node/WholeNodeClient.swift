import KeelCore
import KeelRuntime
import KeelWire

/// The simulation's client: speaks the wire protocol over a simulated transport, follows
/// redirects, opens a session, keeps a window of keyed requests outstanding, and — at least once —
/// resends every unacknowledged request in a new session after a failover or a silent timeout.
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
    var sendBuffers: [UnsafeMutableRawBufferPointer] = []
    var receiving = false
    var sessionID: Int64?
    var nextSequence: Int64 = 1
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
        for buffer in sendBuffers { buffer.deallocate() }
    }

    var isDone: Bool { acknowledgedSet.count == requestCount }

    func payload(forKey key: Int64) -> [UInt8] {
        var bytes = [UInt8](repeating: UInt8(truncatingIfNeeded: key &* 37), count: 8 + fillerBytes[Int(key)])
        bytes.withUnsafeMutableBytes { $0.storeBytes(of: key.littleEndian, as: Int64.self) }
        return bytes
    }

    func start(at index: Int) {
        target = index
        sessionID = nil
        receiving = false
        decoder.reset()
        lastProgressNanos = time.nowNanos
        connection = try? transport.submitConnect(host: endpoints[index].host, port: endpoints[index].clientPort, token: IOToken(1))
    }

    private func send(_ frame: [UInt8]) {
        guard let connection else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 8)
        buffer.copyBytes(from: frame)
        sendBuffers.append(buffer)
        try? transport.submitSend(connection, UnsafeRawBufferPointer(buffer), token: IOToken(3))
    }

    private func request(key: Int64) {
        guard let sessionID else { return }
        let payload = payload(forKey: key)
        var frame = [UInt8](repeating: 0, count: RequestFrame.encodedLength(payloadByteCount: payload.count))
        frame.withUnsafeMutableBytes { buffer in
            payload.withUnsafeBytes { _ = RequestFrame.encode(into: buffer, sessionID: sessionID, sequence: nextSequence, payload: $0) }
        }
        nextSequence += 1
        outstanding.append(key)
        send(frame)
    }

    /// Keeps the window full: resends first, then new keys.
    private func pump() {
        guard sessionID != nil else { return }
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
                var frame = [UInt8](repeating: 0, count: ConnectFrame.encodedLength(credentialsByteCount: 0))
                frame.withUnsafeMutableBytes { _ = ConnectFrame.encode(into: $0, correlationID: 77, credentials: UnsafeRawBufferPointer(start: nil, count: 0)) }
                send(frame)
                postReceive()
            case 2:
                receiving = false
                guard completion.result > 0 else { failed(); continue }
                decoder.didReceive(byteCount: Int(completion.result))
                handleFrames()
                postReceive()
            default:
                break
            }
        }
        // A leader that lost its leadership may drop requests silently: give up on it after a while.
        let waiting = sessionID == nil || !outstanding.isEmpty
        if connection != nil && waiting && time.nowNanos - lastProgressNanos > 1_500_000_000 { failed() }
        if connection == nil && time.nowNanos >= retryAtNanos { start(at: target) }
        pump()
    }

    private func postReceive() {
        guard let connection, !receiving else { return }
        receiving = true
        try? transport.submitReceive(connection, into: decoder.receiveSpace(), token: IOToken(2))
    }

    private func endSession() {
        resend = outstanding.filter { !acknowledgedSet.contains($0) } + resend
        outstanding.removeAll()
        sessionID = nil
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
            case .connectRejected:
                failed()
                return
            case .sessionOpened(let opened):
                sessionID = opened.sessionID
                lastProgressNanos = time.nowNanos
            case .response(let response):
                lastProgressNanos = time.nowNanos
                acknowledge(Array(response.payload))
            case .sessionClosed:
                failed()
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
