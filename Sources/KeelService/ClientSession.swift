import KeelCore

/// What became of a message offered to a client.
public enum OfferResult: Sendable, Equatable {
    /// Queued for the client (on the leader), or suppressed on purpose (on a follower, where
    /// replicas stay silent): either way the service should carry on.
    case accepted
    /// The egress queue is full for now; the message was not taken.
    case backPressured
    /// The message is larger than one egress frame can carry.
    case tooLarge
    /// The session is closed.
    case closed
}

/// Where a session's egress goes. Implemented by the runtime (an SPSC queue towards the consensus
/// agent, which sends it to the client only on the leader).
public protocol SessionEgress: AnyObject {
    /// Offers `message` for `sessionId`, answering request `sequence` (0 when unsolicited), stamped
    /// with `timestamp`.
    func offer(sessionId: Int64, sequence: Int64, timestamp: ClusterTime, message: UnsafeRawBufferPointer) -> OfferResult

    /// Asks the cluster to close session `sessionId` (reason: closed by the service). The leader
    /// appends the close entry; the session closes, on every replica, when that entry is applied
    /// (`onSessionClose` follows). False when the session is not open.
    func requestClose(sessionId: Int64) -> Bool
}

extension SessionEgress {
    /// For egress that cannot close sessions (tests collecting responses): nothing is closed.
    public func requestClose(sessionId: Int64) -> Bool { false }
}

/// One client's session with the cluster: lives in the replicated state, so every replica has the
/// same sessions (the runtime makes them from session-open entries).
public final class ClientSession {
    /// The session's id, unique in the cluster.
    public let id: Int64
    /// Who the client is, as the node's `Authenticator` named it when the session opened (empty
    /// with the default accept-all authenticator). The same on every replica (it is in the log).
    public let principal: [UInt8]
    /// False once the session's close entry was applied.
    public package(set) var isOpen: Bool {
        get { fields.pointee.isOpen }
        set { fields.pointee.isOpen = newValue }
    }
    /// The request being applied (0 outside `onSessionMessage`): offers answer it.
    package var currentSequence: Int64 {
        get { fields.pointee.currentSequence }
        set { fields.pointee.currentSequence = newValue }
    }
    /// The cluster time of the entry being applied.
    package var currentTimestamp: ClusterTime {
        get { fields.pointee.currentTimestamp }
        set { fields.pointee.currentTimestamp = newValue }
    }
    private struct Fields {
        var isOpen = true
        var currentSequence: Int64 = 0
        var currentTimestamp: ClusterTime = .zero
    }
    // The mutable fields live outside the object: a class's stored `var`s are checked for
    // exclusive access at run time on every read and write (`swift_beginAccess`), which was a
    // measurable part of applying each message; these are touched only on the service's thread.
    private let fields: UnsafeMutablePointer<Fields>
    // Strong and `let`: an offer calls it without retaining it (the runtime's egress does not hold
    // the sessions, so there is no cycle).
    private let egress: any SessionEgress

    /// A session (made by the runtime).
    public init(id: Int64, principal: [UInt8] = [], egress: any SessionEgress) {
        precondition(id >= 1, "session ids start at 1")
        self.id = id
        self.principal = principal
        self.egress = egress
        fields = .allocate(capacity: 1)
        fields.initialize(to: Fields())
    }

    deinit {
        fields.deinitialize(count: 1)
        fields.deallocate()
    }

    /// The principal as text (the shared-secret authenticator's principals are UTF-8 names).
    public var principalName: String { String(decoding: principal, as: UTF8.self) }

    /// Asks the cluster to close this session (reason: closed by the service); it closes when the
    /// close entry is applied, on every replica alike. False when already closed.
    @discardableResult
    public func close() -> Bool {
        guard isOpen else { return false }
        return egress.requestClose(sessionId: id)
    }

    /// Sends `message` to the client (egress). On a follower the message is suppressed and
    /// `.accepted` returned, so every replica runs the same code path.
    @discardableResult
    public func offer(_ message: UnsafeRawBufferPointer) -> OfferResult {
        guard isOpen else { return .closed }
        return egress.offer(sessionId: id, sequence: currentSequence, timestamp: currentTimestamp, message: message)
    }

    /// Sends the bytes of `message` (convenience; `offer(_: UnsafeRawBufferPointer)` copies nothing extra).
    @discardableResult
    public func offer(_ message: [UInt8]) -> OfferResult {
        message.withUnsafeBytes { offer($0) }
    }
}
