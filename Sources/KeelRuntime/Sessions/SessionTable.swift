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
public struct SessionTable: Sendable {
    /// How much each session's window keeps.
    public let limits: ResponseWindowLimits
    /// The open sessions' states by slot (nil: a free slot). The service agent applies every
    /// request through here, so a request's state is updated in place, found through `index`
    /// (no hashing, no copy of the state and its window per message).
    private var states: [SessionState?] = []
    /// Slots freed by closes, the latest reused first (deterministic: it depends only on the entries).
    private var freeSlots: [Int] = []
    private var index = SessionIndex()

    public init(limits: ResponseWindowLimits) {
        self.limits = limits
    }

    /// Sessions open.
    public var count: Int { index.count }

    /// The open sessions by id (a copy, for inspection and tests; the hot paths use slots).
    public var sessions: [Int64: SessionState] {
        var out: [Int64: SessionState] = [:]
        for case let state? in states { out[state.id] = state }
        return out
    }

    /// The open session `id`, if any.
    public subscript(id: Int64) -> SessionState? {
        guard let slot = index.slot(of: id) else { return nil }
        return states[slot]
    }

    /// The slot of open session `id`: stable while it stays open, reused after it closes. The
    /// service agent keeps its `ClientSession`s by the same slots.
    @inline(__always)
    public func slot(of id: Int64) -> Int? { index.slot(of: id) }

    /// Slots in use or free: every slot is below this.
    public var slotCount: Int { states.count }

    /// Applies an open entry; false when the id is already open (a second open entry is ignored).
    @discardableResult
    public mutating func open(id: Int64, secret: UInt64, principal: [UInt8], timestamp: ClusterTime) -> Bool {
        insert(
            SessionState(
                id: id, secret: secret, principal: principal, openedAt: timestamp, lastActivity: timestamp, lastAppliedSequence: 0,
                window: ResponseWindow()))
    }

    /// Adds `state` (restore and open); false when its id is open already.
    @discardableResult
    mutating func insert(_ state: SessionState) -> Bool {
        guard index.slot(of: state.id) == nil else { return false }
        let slot: Int
        if let free = freeSlots.popLast() {
            slot = free
            states[slot] = state
        } else {
            slot = states.count
            states.append(state)
        }
        index.insert(state.id, slot: slot)
        return true
    }

    /// Applies a close entry; returns the session it closed, if it was open.
    @discardableResult
    public mutating func close(id: Int64) -> SessionState? {
        guard let slot = index.slot(of: id) else { return nil }
        let state = states[slot]
        states[slot] = nil
        index.remove(id)
        freeSlots.append(slot)
        return state
    }

    /// Decides what request `sequence` of session `sessionID` is, and records it when it is to be
    /// applied (the last applied sequence advances; the window lets go of requests it no longer keeps).
    public mutating func admit(sessionID: Int64, sequence: Int64, timestamp: ClusterTime) -> RequestAdmission {
        guard let slot = index.slot(of: sessionID) else { return .unknownSession }
        return admit(slot: slot, sequence: sequence, timestamp: timestamp)
    }

    /// `admit(sessionID:…)` for the session in `slot` (which must hold an open session).
    @inline(__always)
    public mutating func admit(slot: Int, sequence: Int64, timestamp: ClusterTime) -> RequestAdmission {
        // In place: the optional's payload is modified where the array holds it.
        let expected = states[slot]!.lastAppliedSequence + 1
        if sequence > expected { return .outOfOrder(expected: expected) }
        if sequence < expected {
            return sequence >= states[slot]!.window.startSequence ? .duplicate : .responseNoLongerAvailable(expected: expected)
        }
        states[slot]!.lastAppliedSequence = sequence
        states[slot]!.lastActivity = timestamp
        states[slot]!.window.release(before: sequence - Int64(limits.requestsMax) + 1)
        return .apply
    }

    /// Keeps a response the service produced for request `sequence` (the one being applied).
    /// Unsolicited messages (sequence 0) are not kept: no request can ask for them again.
    public mutating func recordResponse(sessionID: Int64, sequence: Int64, timestamp: ClusterTime, payload: UnsafeRawBufferPointer) {
        guard let slot = index.slot(of: sessionID) else { return }
        recordResponse(slot: slot, sequence: sequence, timestamp: timestamp, payload: payload)
    }

    /// `recordResponse(sessionID:…)` for the session in `slot` (which must hold an open session).
    @inline(__always)
    public mutating func recordResponse(slot: Int, sequence: Int64, timestamp: ClusterTime, payload: UnsafeRawBufferPointer) {
        guard sequence > 0, limits.requestsMax > 0 else { return }
        states[slot]!.window.record(sequence: sequence, timestamp: timestamp, payload: payload, limits: limits)
    }

    /// Calls `body` with each response held for request `sequence` of the session in `slot`.
    public func forEachResponse(slot: Int, of sequence: Int64, _ body: (ClusterTime, UnsafeRawBufferPointer) -> Void) {
        states[slot]?.window.forEachResponse(of: sequence, body)
    }

    /// Every open session id, ascending (a deterministic order, unlike the slots' or a dictionary's).
    public var sortedIDs: [Int64] { states.compactMap { $0?.id }.sorted() }
}

extension SessionTable: Equatable {
    /// Equal when the same sessions are open with equal states, whatever slots they sit in.
    public static func == (lhs: SessionTable, rhs: SessionTable) -> Bool {
        guard lhs.limits == rhs.limits, lhs.count == rhs.count else { return false }
        for case let state? in lhs.states where rhs[state.id] != state { return false }
        return true
    }
}
