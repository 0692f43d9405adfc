import KeelCore
import KeelWire

// Finding the leader and keeping a session: attempts, redirects, rejections, losing a leader, and
// the inbound frames that drive all of it.

/// What a completion belongs to; kept in the token's low bits beside the connection's generation.
enum ClientOperation: UInt64 {
    case connect = 1, receive, requests, connectFrame, keepAlive, closeSignal, admin
}

extension ClusterClient {
    func token(_ operation: ClientOperation) -> IOToken { IOToken(generation << 4 | operation.rawValue) }

    /// Connects to the redirect target if there is one, else to the member under the cursor.
    func startAttempt(now: Int64) {
        generation += 1
        decoder.reset()
        keepAliveInFlight = false
        inFlightEndID = nil
        let host: String, port: UInt16
        if let target = redirectTarget {
            (host, port) = (target.host, target.port)
            currentTarget = "\(target.member)@\(host):\(port)"
        } else {
            let member = configuration.members[memberCursor % configuration.members.count]
            (host, port) = (member.host, member.clientPort)
            currentTarget = member.description
        }
        redirectTarget = nil
        attemptStartNanos = now
        do throws(IOError) {
            connection = try transport.submitConnect(host: host, port: port, token: token(.connect))
            phase = .tcpConnecting
        } catch {
            attemptFailed("connect to \(currentTarget): \(error)", now: now)
        }
    }

    /// This member is not (or no longer knows) the leader: try the next, pausing after a round.
    func attemptFailed(_ problem: String, now: Int64) {
        dropConnection()
        lastProblem = problem
        memberCursor = (memberCursor + 1) % configuration.members.count
        retryLater(now: now)
    }

    private func retryLater(now: Int64) {
        attemptsSinceDelay += 1
        if attemptsSinceDelay >= configuration.members.count + 1 {
            attemptsSinceDelay = 0
            phase = .retryWait(untilNanos: now + configuration.retryDelayNanos)
        } else {
            phase = .retryWait(untilNanos: now)
        }
    }

    /// The connection to the leader (or candidate) ended: with a session, this is losing the leader.
    func connectionLost(_ problem: String, now: Int64) {
        guard phase != .closed else { return }
        if phase == .open || phase == .awaitingSession {
            // The session (id and secret) is kept: the next leader gets a reattach.
            searchStartNanos = searchStartNanos ?? now
            attemptsSinceDelay = 0
        }
        attemptFailed(problem, now: now)
    }

    /// Stops for good with `error`.
    func fail(_ error: ClusterClientError) {
        dropConnection()
        phase = .closed
        failure = failure ?? error
    }

    func dropConnection() {
        if let connection { transport.close(connection) }
        connection = nil
        inFlightEndID = nil
        keepAliveInFlight = false
    }

    // MARK: - Completions

    func handle(_ completion: IOCompletion, _ handler: (ClusterResponse) -> Void) -> Int {
        guard completion.token.rawValue >> 4 == generation, connection != nil,
            let operation = ClientOperation(rawValue: completion.token.rawValue & 0xF)
        else { return 0 }
        let now = clock.monotonicNanos()
        if let error = completion.error {
            connectionLost("\(operation) with \(currentTarget) failed: \(error)", now: now)
            return 1
        }
        switch operation {
        case .connect:
            connected(now: now)
        case .receive:
            guard completion.result > 0 else {
                connectionLost("\(currentTarget) closed the connection", now: now)
                return 1
            }
            decoder.didReceive(byteCount: Int(completion.result))
            lastReceiveNanos = now
            receiveFrames(now: now, handler)
        case .requests:
            nextToSendID = max(inFlightEndID ?? nextToSendID, outstanding.firstRequestID)
            inFlightEndID = nil
            releaseAcknowledged()
            flushRequests(now: now)
        case .keepAlive:
            keepAliveInFlight = false
        case .closeSignal:
            closeSignalSent = true
        case .connectFrame, .admin:
            break
        }
        return 1
    }

    private func connected(now: Int64) {
        guard let connection else { return }
        phase = .awaitingReply
        let slot = UnsafeMutableRawBufferPointer(rebasing: controlBuffer[0..<Self.connectSlotBytes])
        let length = configuration.credentials.withUnsafeBytes { credentials in
            sessionID >= 1
                ? ReattachFrame.encode(into: slot, correlationID: Int64(generation), sessionID: sessionID, secret: sessionSecret, credentials: credentials)
                : ConnectFrame.encode(into: slot, correlationID: Int64(generation), credentials: credentials)
        }
        do throws(IOError) {
            try submitReceive()
            try transport.submitSend(connection, UnsafeRawBufferPointer(rebasing: slot[0..<length]), token: token(.connectFrame))
            lastSendNanos = now
        } catch {
            attemptFailed("connect to \(currentTarget): \(error)", now: now)
        }
    }

    private func submitReceive() throws(IOError) {
        guard let connection else { return }
        try transport.submitReceive(connection, into: decoder.receiveSpace(), token: token(.receive))
    }

    /// Handles every whole frame received, then asks for more bytes (if still connected).
    private func receiveFrames(now: Int64, _ handler: (ClusterResponse) -> Void) {
        let current = generation
        while generation == current && phase != .closed {
            let frame: UnsafeRawBufferPointer?
            do throws(WireRejection) {
                frame = try decoder.nextFrame()
            } catch {
                connectionLost("malformed frame from \(currentTarget): \(error)", now: now)
                return
            }
            guard let frame else { break }
            do throws(WireRejection) {
                try handleFrame(WireMessage(validating: frame), now: now, handler)
            } catch {
                connectionLost("malformed frame from \(currentTarget): \(error)", now: now)
                return
            }
        }
        guard generation == current && connection != nil && phase != .closed else { return }
        do throws(IOError) {
            try submitReceive()
        } catch {
            connectionLost("receive from \(currentTarget): \(error)", now: now)
        }
    }
}
