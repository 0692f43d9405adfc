import KeelCore
import KeelWire

// Blocking and async conveniences over offer/poll: wait for a session, request/response, close.

extension ClusterClient {
    /// Polls (waiting in poll(2) between rounds) until a session is open. Throws when the client
    /// fails first (e.g. no leader within the failover timeout) or `timeoutNanos` passes.
    public func connect(timeoutNanos: Int64? = nil) throws(ClusterClientError) {
        let start = clock.monotonicNanos()
        let limit = timeoutNanos ?? configuration.failoverTimeoutNanos
        while state != .open {
            try poll(waitingUpToNanos: 5_000_000) { _ in }
            let waited = clock.monotonicNanos() - start
            if state != .open && waited > limit {
                throw .noLeader(waitedNanos: waited, lastProblem: lastProblem)
            }
        }
    }

    /// Sends one request and returns the service's response to it: the `async` request/response
    /// convenience. Waits while back-pressured, follows failovers (re-sending the request on the new
    /// session), and throws `responseTimedOut` after `timeoutNanos` (default: the failover timeout
    /// plus the response timeout). Responses to *other* requests that arrive meanwhile go to
    /// `otherResponses`. One `send` at a time per client; between waits it yields to other tasks.
    public func send(
        _ payload: [UInt8], timeoutNanos: Int64? = nil, otherResponses: (ClusterResponse) -> Void = { _ in }
    ) async throws(ClusterClientError) -> [UInt8] {
        let start = clock.monotonicNanos()
        let limit = timeoutNanos ?? configuration.failoverTimeoutNanos + configuration.responseTimeoutNanos
        var requestID: Int64 = 0
        var answer: [UInt8]?
        var rejected = false
        while answer == nil {
            if requestID == 0 {
                switch offer(payload) {
                case .accepted(let id): requestID = id
                case .backPressured: break
                case .closed: throw failure ?? .closed
                case .tooLarge: throw .payloadTooLarge(bytes: payload.count, maximum: outstanding.byteCapacity - RequestFrame.fixedBytes)
                }
            }
            try poll(waitingUpToNanos: 1_000_000) { response in
                if requestID != 0 && response.requestID == requestID && answer == nil {
                    if response.rejection != nil { rejected = true }
                    answer = Array(response.payload)
                } else {
                    otherResponses(response)
                }
            }
            if answer != nil { break }
            let waited = clock.monotonicNanos() - start
            if waited > limit { throw .responseTimedOut(requestID: requestID, waitedNanos: waited) }
            if Task.isCancelled { throw .cancelled }
            await Task.yield()
        }
        if rejected { throw .responseNoLongerAvailable(requestID: requestID) }
        return answer!
    }

    /// Ends the session (a close frame to the leader, given up to `lingerNanos` to go out) and
    /// closes the connection. Requests still outstanding are abandoned. Idempotent.
    public func close(lingerNanos: Int64 = 200_000_000) {
        guard phase != .closed else { return }
        if phase == .open, connection != nil {
            closeRequested = true
            let now = clock.monotonicNanos()
            sendSignal(.close, now: now)
            // Wait for the close frame to leave (or the session-closed to come back).
            while phase == .open && clock.monotonicNanos() - now < lingerNanos && !closeSignalSent {
                _ = try? poll(waitingUpToNanos: 5_000_000) { _ in }
            }
        }
        fail(.closed)
    }
}
