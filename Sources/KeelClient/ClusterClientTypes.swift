import KeelCore
import KeelWire

/// Why a client stopped, or an operation on it failed.
public enum ClusterClientError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No member accepted a session within the failover timeout; `lastProblem` says what the last
    /// attempt ran into.
    case noLeader(waitedNanos: Int64, lastProblem: String)
    /// A member refused the connect for a reason retrying cannot cure (credentials, version).
    case rejected(ConnectRejection, detail: String)
    /// No response within the time allowed for one request (`send`).
    case responseTimedOut(requestID: Int64, waitedNanos: Int64)
    /// The client was closed.
    case closed
    /// The task awaiting `send` was cancelled (the request may still be applied).
    case cancelled
    /// The payload is larger than the client's outstanding buffer can ever hold.
    case payloadTooLarge(bytes: Int, maximum: Int)
    /// The cluster closed the session (timed out, closed by the service, …). Requests still
    /// outstanding may or may not have been applied; none will be applied later.
    case sessionClosed(SessionCloseReason, outstandingRequests: Int)
    /// The cluster and the client disagree about the session's sequence (a client bug).
    case sequenceOutOfOrder(requestID: Int64, sequence: Int64, expected: Int64)
    /// The request was applied before (a retry), but its response is no longer available (`send`).
    case responseNoLongerAvailable(requestID: Int64)

    public var description: String {
        switch self {
        case .noLeader(let waited, let problem):
            "no leader found within \(waited / 1_000_000) ms (last problem: \(problem))"
        case .rejected(let reason, let detail):
            "connect rejected: \(reason)\(detail.isEmpty ? "" : " (\(detail))")"
        case .responseTimedOut(let id, let waited):
            "no response to request \(id) within \(waited / 1_000_000) ms"
        case .closed: "the client is closed"
        case .cancelled: "cancelled while waiting for a response"
        case .payloadTooLarge(let bytes, let maximum): "payload of \(bytes) bytes exceeds the limit of \(maximum)"
        case .sessionClosed(let reason, let outstanding):
            "session \(reason) (\(outstanding) requests outstanding, each applied at most once)"
        case .sequenceOutOfOrder(let id, let sequence, let expected):
            "request \(id): sequence \(sequence) out of order, the cluster expects \(expected)"
        case .responseNoLongerAvailable(let id): "request \(id) was applied, but its response is no longer available"
        }
    }
}

/// What `offer` did with a message.
public enum OfferResult: Equatable, Sendable {
    /// Buffered (and sent as soon as a session is open); `requestID` numbers it client-wide.
    case accepted(requestID: Int64)
    /// The outstanding buffer is full: poll (responses acknowledge requests) and offer again.
    case backPressured
    /// The client has failed or was closed; `ClusterClient.failure` says why.
    case closed
    /// Larger than the whole outstanding buffer: it can never be accepted.
    case tooLarge
}

/// Where the client is in finding the leader and holding a session.
public enum ClusterClientState: Equatable, Sendable, CustomStringConvertible {
    /// Looking for the leader: connecting, following redirects, or waiting to retry.
    case connecting
    /// The leader accepted the connect; waiting for its session-opened.
    case awaitingSession
    /// A session is open; requests flow.
    case open
    /// Closed by `close()` or failed (see `failure`).
    case closed

    public var description: String {
        switch self {
        case .connecting: "connecting"
        case .awaitingSession: "awaiting session"
        case .open: "open"
        case .closed: "closed"
        }
    }
}

/// One message from the cluster to this client, handed to `poll`'s handler. The payload is a view
/// into the client's receive buffer, valid only during the call.
public struct ClusterResponse {
    /// The request it answers (as returned by `offer`), or 0 for an unsolicited message.
    public let requestID: Int64
    /// The session it came on.
    public let sessionID: Int64
    /// The cluster time of the log entry whose application produced it.
    public let timestamp: ClusterTime
    /// The service's bytes (valid only inside the handler).
    public let payload: UnsafeRawBufferPointer
    /// Set when this is not the service's answer but the cluster's: the request was applied
    /// before, and its response has left the session's response window.
    public let rejection: RequestRejection?

    public init(requestID: Int64, sessionID: Int64, timestamp: ClusterTime, payload: UnsafeRawBufferPointer, rejection: RequestRejection? = nil) {
        self.requestID = requestID
        self.sessionID = sessionID
        self.timestamp = timestamp
        self.payload = payload
        self.rejection = rejection
    }
}

/// A member's answer to an admin request (`ClusterClient.sendAdmin`).
public struct AdminAnswer: Sendable, Equatable {
    public var correlationID: Int64
    public var requestType: AdminRequestType
    public var status: AdminStatus
    /// The member's explanation (UTF-8 text).
    public var text: String
}
