import KeelCore

/// One open client session in the replicated state.
public struct SessionState: Sendable, Equatable {
    /// The session's id, unique in the cluster.
    public let id: Int64
    /// Issued at open (carried in the open entry); a client presents it to reattach the session.
    public let secret: UInt64
    /// Who the authenticator said the client is (empty with the accept-all default).
    public let principal: [UInt8]
    /// The cluster time of the open entry.
    public let openedAt: ClusterTime
    /// The cluster time of the session's latest entry (open or request).
    public internal(set) var lastActivity: ClusterTime
    /// The highest request sequence applied (0 before the first).
    public internal(set) var lastAppliedSequence: Int64
    /// The responses kept for retried requests.
    public internal(set) var window: ResponseWindow
}

/// What to do with a request the log delivers, decided in log order (so every replica decides the same).
public enum RequestAdmission: Sendable, Equatable {
    /// The next request of the session: give it to the service.
    case apply
    /// Applied before and its responses are held: send them again, do not apply.
    case duplicate
    /// Applied before, but its responses have left the window.
    case responseNoLongerAvailable(expected: Int64)
    /// The sequence skips ahead of the next one expected.
    case outOfOrder(expected: Int64)
    /// No such session is open (closed earlier in the log): drop it.
    case unknownSession
}

/// The sessions of the replicated state (DESIGN.md decisions 9 and 10), as one value: a
/// deterministic fold over committed log entries (open, request, response, close), so every
/// replica that applied the same entries holds an equal table, and a snapshot is its
/// `serialized()` bytes.
///
/// The service agent keeps the full table (with response windows). The consensus agent keeps its
/// own fold at the commit position without windows, to know which sessions exist and their
/// secrets when a client reattaches, and which to time out.
public struct SessionTable: Sendable, Equatable {
    /// How much each session's window keeps.
    public let limits: ResponseWindowLimits
    /// The open sessions by id.
    public internal(set) var sessions: [Int64: SessionState] = [:]

    public init(limits: ResponseWindowLimits) {
        self.limits = limits
    }

    /// The open session `id`, if any.
    public subscript(id: Int64) -> SessionState? { sessions[id] }

    /// Applies an open entry; false when the id is already open (a second open entry is ignored).
    @discardableResult
    public mutating func open(id: Int64, secret: UInt64, principal: [UInt8], timestamp: ClusterTime) -> Bool {
        guard sessions[id] == nil else { return false }
        sessions[id] = SessionState(
            id: id, secret: secret, principal: principal, openedAt: timestamp, lastActivity: timestamp, lastAppliedSequence: 0,
            window: ResponseWindow())
        return true
    }

    /// Applies a close entry; returns the session it closed, if it was open.
    @discardableResult
    public mutating func close(id: Int64) -> SessionState? {
        sessions.removeValue(forKey: id)
    }

    /// Decides what request `sequence` of session `sessionID` is, and records it when it is to be
    /// applied (the last applied sequence advances; the window lets go of requests it no longer keeps).
    public mutating func admit(sessionID: Int64, sequence: Int64, timestamp: ClusterTime) -> RequestAdmission {
        guard var session = sessions[sessionID] else { return .unknownSession }
        let expected = session.lastAppliedSequence + 1
        if sequence > expected { return .outOfOrder(expected: expected) }
        if sequence < expected {
            return sequence >= session.window.startSequence ? .duplicate : .responseNoLongerAvailable(expected: expected)
        }
        // Modified in a local copy and stored back: the dictionary's storage is not copied (the
        // local holds the only reference to the window's buffers between remove and store).
        sessions[sessionID] = nil
        session.lastAppliedSequence = sequence
        session.lastActivity = timestamp
        session.window.release(before: sequence - Int64(limits.requestsMax) + 1)
        sessions[sessionID] = session
        return .apply
    }

    /// Keeps a response the service produced for request `sequence` (the one being applied).
    /// Unsolicited messages (sequence 0) are not kept: no request can ask for them again.
    public mutating func recordResponse(sessionID: Int64, sequence: Int64, timestamp: ClusterTime, payload: UnsafeRawBufferPointer) {
        guard sequence > 0, limits.requestsMax > 0, var session = sessions.removeValue(forKey: sessionID) else { return }
        session.window.record(sequence: sequence, timestamp: timestamp, payload: payload, limits: limits)
        sessions[sessionID] = session
    }

    /// Every open session id, ascending (a deterministic order, unlike the dictionary's).
    public var sortedIDs: [Int64] { sessions.keys.sorted() }
}
