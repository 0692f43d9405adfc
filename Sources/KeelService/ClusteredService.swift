import KeelCore

/// The business logic of a clustered service, written once and run on every member
/// (DESIGN.md "The job"). Every replica receives the same calls, in the same order, with the
/// same timestamps, because the calls come from committed log entries; so every replica reaches
/// the same state. Only cluster time (`ClusterTime`, stamped by the leader on each entry) may be
/// used as "now": reading a clock, a random generator or anything outside the log breaks that.
///
/// The runtime calls these methods on the service agent's thread, one at a time.
public protocol ClusteredService {
    /// Called once before any entry is applied. `cluster` stays valid for the node's lifetime;
    /// keep it to read the role, the time and the log position.
    mutating func onStart(cluster: Cluster) throws

    /// A client session opened (its open entry is committed).
    mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime)

    /// A request of `session` is committed. `message` points into the mapped log and is valid only
    /// during the call: copy what you keep. Answer with `session.offer(_:)`.
    mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer)

    /// A session closed (its close entry is committed); `session` is not usable afterwards.
    mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason)

    /// This member's role changed. Not sequenced through the log: replicas see it at different
    /// points, so never let it change replicated state.
    mutating func onRoleChange(_ role: ClusterRole)

    /// The node is shutting down; no further calls follow.
    mutating func onTerminate(cluster: Cluster)
}

extension ClusteredService {
    public mutating func onRoleChange(_ role: ClusterRole) {}
    public mutating func onTerminate(cluster: Cluster) {}
}

/// The role this member plays, as the service sees it.
public enum ClusterRole: UInt8, Sendable, CustomStringConvertible {
    /// Follows a leader (or waits for one); its egress is suppressed.
    case follower
    /// Campaigning for leadership.
    case candidate
    /// Leads: its replica's egress reaches the clients.
    case leader

    public var description: String {
        switch self {
        case .follower: "follower"
        case .candidate: "candidate"
        case .leader: "leader"
        }
    }
}

/// Why a session closed (mirrors the wire's session-closed reasons).
public enum CloseReason: UInt16, Sendable, CustomStringConvertible {
    /// The client closed it, or its connection to the leader ended.
    case clientClosed = 1
    /// No keep-alive or request arrived in time.
    case timedOut = 2
    /// The service closed it.
    case closedByService = 3
    /// Too many sessions; the oldest idle one made room.
    case evicted = 4
    /// The cluster is shutting down.
    case shutdown = 5

    public var description: String {
        switch self {
        case .clientClosed: "client closed"
        case .timedOut: "timed out"
        case .closedByService: "closed by service"
        case .evicted: "evicted"
        case .shutdown: "shutdown"
        }
    }
}
