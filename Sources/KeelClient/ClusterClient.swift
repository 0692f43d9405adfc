import KeelCore
import KeelPOSIX
import KeelWire

/// A client of a Keel cluster (issue 6 §3), over plain non-blocking sockets so client programs run
/// where io_uring is blocked.
///
/// Given the members' client addresses it connects, follows redirects to the leader and opens a
/// session. `offer` buffers a request without blocking (or reports back-pressure); `poll` moves
/// everything forward and hands responses to a closure. When the leader is lost (its connection
/// closes, or it stays silent past `responseTimeoutNanos` with requests unanswered) the client
/// finds the new leader, **reattaches the same session** (its id and the secret issued at open)
/// and re-sends every request not yet acknowledged with its original sequence number: the cluster
/// applies each request once and re-sends the responses of those it had applied (exactly-once;
/// see docs/semantics.md). A response acknowledges its request and every earlier one of its session.
///
/// Requests carry the session's sequence (1, 2, 3, … on the wire); `offer` returns a client-wide
/// request id, and each response names the request id it answers.
///
/// Owned by one thread (or one task at a time); not thread-safe. Everything is allocated at start:
/// the outstanding-request ring, the receive buffer, the completion buffer.
public final class ClusterClient<Time: Clock> {
    /// The configuration in force.
    public let configuration: ClusterClientConfiguration
    let clock: Time
    let transport: PosixTransport
    var completions: IOCompletionBuffer
    let decoder: FrameStreamDecoder
    var outstanding: OutstandingRequests
    /// Control frames (connect, keep-alive, close), each in its own slot so they can be in flight
    /// together with data.
    let controlBuffer: UnsafeMutableRawBufferPointer

    enum Phase: Equatable {
        case retryWait(untilNanos: Int64)
        case tcpConnecting
        case awaitingReply
        case awaitingSession
        case open
        case closed
    }

    var phase: Phase
    var connection: ConnectionID?
    /// Admin answers received, oldest first (`sendAdmin`).
    public internal(set) var adminResponses: [AdminAnswer] = []
    /// The admin request frame in flight (kept until the next one: the send reads it later).
    var adminFrame: UnsafeMutableRawBufferPointer?
    /// Bumped for every connection; completions of older ones are ignored.
    var generation: UInt64 = 0
    var memberCursor = 0
    var redirectTarget: (host: String, port: UInt16, member: MemberID)?
    var currentTarget = ""
    var attemptsSinceDelay = 0
    var attemptStartNanos: Int64 = 0
    /// Set while there is no session: when the search for a leader began.
    var searchStartNanos: Int64?
    var lastProblem = "none"
    var lastReceiveNanos: Int64 = 0
    var lastSendNanos: Int64 = 0
    var keepAliveInFlight = false
    var closeRequested = false
    var closeSignalSent = false
    /// The next request to send, and the end (exclusive) of the send in flight, if any.
    var nextToSendID: Int64 = 1
    var inFlightEndID: Int64?
    /// On the wire, sequence = request id − sequenceOffset (sequences restart at 1 per session).
    var sequenceOffset: Int64 = 0
    /// The highest request id a response has acknowledged.
    var highestAcknowledgedID: Int64 = 0
    /// The cluster refused a request (suspended, shutting down): sending stops, and at
    /// `refusedRetryAtNanos` resumes from this request, in order.
    var refusedResendFromID: Int64?
    var refusedRetryAtNanos: Int64 = 0
    /// Requests below this id were sent before the last refusal: a gap the cluster reports for one
    /// of them is the refusal's doing, and the resend closes it.
    var refusedRangeEndID: Int64 = 0

    /// The session's id (kept across failovers), or 0 before one opened.
    public internal(set) var sessionID: Int64 = 0
    /// The session's secret, presented to reattach it.
    var sessionSecret: UInt64 = 0
    /// The request whose re-sent responses are being delivered (later copies of those are dropped).
    var resentRequestID: Int64 = 0
    /// The leader as last reported by a connect-accepted or redirect.
    public internal(set) var leaderMemberID: MemberID?
    /// The leader's term as last reported.
    public internal(set) var leaderTerm: Term = .zero
    /// Sessions opened so far (0 or 1: a failover reattaches the same session).
    public internal(set) var sessionsOpened = 0
    /// Times the session was reattached after losing the leader (or the connection).
    public internal(set) var reattachments = 0
    /// Requests re-sent (with their original sequence) after a reattach.
    public internal(set) var requestsResent = 0
    /// Re-sent responses dropped because their request had already been answered.
    public internal(set) var duplicateResponsesDropped = 0
    /// Requests the cluster refused while suspended or shutting down (each sent again later).
    public internal(set) var requestsRefused = 0
    /// Why the client stopped, once it has.
    public internal(set) var failure: ClusterClientError?

    static var connectSlotBytes: Int { ReattachFrame.fixedBytes + WireProtocol.maxCredentialsBytes }
    static var maxFramesPerSend: Int { 1024 }

    /// A client for `configuration`, reading time from `clock`. Starts looking for the leader at
    /// the first `poll` (or `connect`).
    public init(configuration: ClusterClientConfiguration, clock: Time) {
        self.configuration = configuration
        self.clock = clock
        transport = PosixTransport(configuration: .init(maxConnections: 4, operationsPerConnection: 16))
        completions = IOCompletionBuffer(capacity: 64)
        decoder = FrameStreamDecoder(maxFrameLengthBytes: configuration.maxInboundFrameBytes)
        outstanding = OutstandingRequests(capacity: configuration.maxOutstandingRequests, bytes: configuration.outstandingBytesMax)
        controlBuffer = .allocate(byteCount: Self.connectSlotBytes + 2 * SessionSignalFrame.length, alignment: 16)
        phase = .retryWait(untilNanos: 0)
        searchStartNanos = clock.monotonicNanos()
    }

    deinit {
        if let connection { transport.close(connection) }
        controlBuffer.deallocate()
        adminFrame?.deallocate()
    }

    /// Sends an admin request on the open session's connection (the leader's); the answer arrives
    /// in `adminResponses` as `poll` runs (`body`: the request's, e.g. the target of a leadership
    /// transfer). False when no session is open. The connection's principal must be allowed to administer.
    public func sendAdmin(_ type: AdminRequestType, correlationID: Int64, body: [UInt8] = []) -> Bool {
        guard phase == .open, let connection, body.count <= WireProtocol.maxAdminBodyBytes else { return false }
        adminFrame?.deallocate()
        let frame = UnsafeMutableRawBufferPointer.allocate(byteCount: AdminRequestFrame.encodedLength(bodyByteCount: body.count), alignment: 8)
        adminFrame = frame
        let length = body.withUnsafeBytes { AdminRequestFrame.encode(into: frame, correlationID: correlationID, requestType: type, body: $0) }
        do throws(IOError) {
            try transport.submitSend(connection, UnsafeRawBufferPointer(rebasing: frame[0..<length]), token: token(.admin))
            return true
        } catch {
            return false
        }
    }

    /// Where the client is.
    public var state: ClusterClientState {
        switch phase {
        case .retryWait, .tcpConnecting, .awaitingReply: .connecting
        case .awaitingSession: .awaitingSession
        case .open: .open
        case .closed: .closed
        }
    }

    /// Requests offered and not yet acknowledged.
    public var outstandingCount: Int { outstanding.count }

    /// The id the next accepted offer gets.
    public var nextRequestID: Int64 { outstanding.nextRequestID }

    /// Buffers one request (copying `payload`); it goes out as soon as a session is open and the
    /// send before it has completed. Never blocks.
    public func offer(_ payload: UnsafeRawBufferPointer) -> OfferResult {
        guard phase != .closed else { return .closed }
        let frameBytes = RequestFrame.encodedLength(payloadByteCount: payload.count)
        guard frameBytes <= outstanding.byteCapacity, payload.count <= RequestFrame.maxPayloadBytes else { return .tooLarge }
        let hasSession = sessionID >= 1
        let sequence = hasSession ? outstanding.nextRequestID - sequenceOffset : 1
        // Before the first session opens the frame carries placeholders; `sessionDidOpen` restamps it.
        guard let id = outstanding.append(payload: payload, sessionID: hasSession ? sessionID : 1, sequence: sequence) else {
            return .backPressured
        }
        if phase == .open && inFlightEndID == nil { flushRequests(now: clock.monotonicNanos()) }
        return .accepted(requestID: id)
    }

    /// Buffers one request from an array (see `offer(_: UnsafeRawBufferPointer)`).
    public func offer(_ payload: [UInt8]) -> OfferResult {
        payload.withUnsafeBytes { offer($0) }
    }

    /// Moves everything forward without blocking: reaps socket completions, hands each response to
    /// `handler` (its payload valid only during the call), sends what is due, and drives leader
    /// search and failover. Returns the amount of work done (0 when idle). Throws once the client
    /// has failed or is closed.
    @discardableResult
    public func poll(_ handler: (ClusterResponse) -> Void) throws(ClusterClientError) -> Int {
        if let failure { throw failure }
        var work = 0
        transport.reapCompletions(into: &completions)
        for index in 0..<completions.count {
            work += handle(completions[index], handler)
        }
        completions.removeAll()
        work += performDuties(now: clock.monotonicNanos())
        if let failure { throw failure }
        return work
    }

    /// Like `poll(_:)`, but when there is nothing to do waits in poll(2) for up to `timeoutNanos`
    /// (at most 10 ms at a time, so timers stay punctual) for the sockets to make progress.
    @discardableResult
    public func poll(waitingUpToNanos timeoutNanos: Int64, _ handler: (ClusterResponse) -> Void) throws(ClusterClientError) -> Int {
        let work = try poll(handler)
        if work > 0 { return work }
        try? transport.waitForCompletions(timeoutNanos: min(timeoutNanos, 10_000_000))
        return try poll(handler)
    }

    // MARK: - Duties

    /// Timers and sends: retries, attempt and failover timeouts, batching requests, keep-alives.
    func performDuties(now: Int64) -> Int {
        if phase != .open && phase != .closed, let searchStartNanos,
            now - searchStartNanos > configuration.failoverTimeoutNanos
        {
            fail(.noLeader(waitedNanos: now - searchStartNanos, lastProblem: lastProblem))
            return 1
        }
        switch phase {
        case .closed:
            return 0
        case .retryWait(let untilNanos):
            guard now >= untilNanos else { return 0 }
            startAttempt(now: now)
            return 1
        case .tcpConnecting, .awaitingReply, .awaitingSession:
            guard now - attemptStartNanos > configuration.attemptTimeoutNanos else { return 0 }
            attemptFailed("\(currentTarget) did not answer within \(configuration.attemptTimeoutNanos / 1_000_000) ms (\(phase))", now: now)
            return 1
        case .open:
            return openSessionDuties(now: now)
        }
    }

    private func openSessionDuties(now: Int64) -> Int {
        var work = 0
        if let from = refusedResendFromID, now >= refusedRetryAtNanos, inFlightEndID == nil {
            refusedResendFromID = nil
            nextToSendID = max(from, outstanding.firstRequestID)
            flushRequests(now: now)
            work += 1
        } else if refusedResendFromID == nil && inFlightEndID == nil && nextToSendID < outstanding.nextRequestID {
            flushRequests(now: now)
            work += 1
        }
        let unanswered = nextToSendID > outstanding.firstRequestID || inFlightEndID != nil
        if unanswered && now - lastReceiveNanos > configuration.responseTimeoutNanos {
            connectionLost("leader \(currentTarget) silent for \(configuration.responseTimeoutNanos / 1_000_000) ms with requests unanswered", now: now)
            return work + 1
        }
        if !keepAliveInFlight && now - lastSendNanos >= configuration.keepAliveIntervalNanos {
            sendSignal(.keepAlive, now: now)
            work += 1
        }
        return work
    }

    /// Sends the next contiguous run of unsent requests in one send.
    func flushRequests(now: Int64) {
        guard phase == .open, inFlightEndID == nil, refusedResendFromID == nil, let connection else { return }
        nextToSendID = max(nextToSendID, outstanding.firstRequestID)
        guard nextToSendID < outstanding.nextRequestID else { return }
        let index = Int(nextToSendID - outstanding.firstRequestID)
        let run = outstanding.contiguousRun(from: index, maxFrames: Self.maxFramesPerSend)
        // Silence is measured from the moment requests became unanswered, not from the last reply.
        if nextToSendID == outstanding.firstRequestID { lastReceiveNanos = now }
        do throws(IOError) {
            try transport.submitSend(connection, run.bytes, token: token(.requests))
            inFlightEndID = nextToSendID + Int64(run.frames)
            lastSendNanos = now
        } catch {
            connectionLost("send to \(currentTarget) failed: \(error)", now: now)
        }
    }

    func sendSignal(_ type: MessageType, now: Int64) {
        guard let connection, sessionID >= 1 else { return }
        let offset = Self.connectSlotBytes + (type == .keepAlive ? 0 : SessionSignalFrame.length)
        let slot = UnsafeMutableRawBufferPointer(rebasing: controlBuffer[offset..<(offset + SessionSignalFrame.length)])
        let length = SessionSignalFrame.encode(into: slot, type: type, sessionID: sessionID)
        do throws(IOError) {
            try transport.submitSend(connection, UnsafeRawBufferPointer(rebasing: slot[0..<length]), token: token(type == .keepAlive ? .keepAlive : .closeSignal))
            if type == .keepAlive { keepAliveInFlight = true }
            lastSendNanos = now
        } catch {
            connectionLost("send to \(currentTarget) failed: \(error)", now: now)
        }
    }
}
