import KeelCore

/// The business logic of a clustered service, written once and run on every member
/// (DESIGN.md "The job"). Every replica receives the same calls, in the same order, with the
/// same timestamps, because the calls come from committed log entries; so every replica reaches
/// the same state.
///
/// The runtime calls these methods on the service agent's thread, one at a time. Inside the
/// callbacks that apply an entry (`onSessionOpen`, `onSessionMessage`, `onSessionClose`,
/// `onTimerEvent`) the rules of determinism hold:
/// - use `timestamp` (or `Cluster.time`) as "now" — never a clock, a random generator, the
///   environment, or anything else outside the log;
/// - never let the iteration order of a `Dictionary` or `Set` feed output, timers or state (it
///   differs between processes); sort first, or keep ordered structures;
/// - no blocking I/O, no sleeping, no waiting on other threads: the next entry waits for you;
/// - answer clients only through `ClientSession.offer(_:)` (suppressed on followers, so every
///   replica runs the same code), and change time-driven state only through timers.
public protocol ClusteredService {
    /// Called once before any entry is applied. `cluster` stays valid for the node's lifetime:
    /// keep it to read the role, the time and the log position, and to schedule timers later.
    /// `snapshot` is the state to restore when the node restarts from a snapshot (nil on a fresh
    /// start): read it back as `onTakeSnapshot` wrote it, checking `SnapshotReader.serviceVersion`
    /// first (throw `SnapshotFormatError.unsupportedVersion` for one you cannot read).
    ///
    /// Do not schedule timers or close sessions here: `onStart` runs again at every restart, on
    /// one replica at a time, so anything it did would not be at a log position. Throwing stops the node.
    mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws

    /// A client session opened (its open entry is committed). The session stays valid until
    /// `onSessionClose`; `Cluster.session(id:)` finds it by id.
    mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime)

    /// A request of `session` is committed. `message` points into the mapped log and is valid only
    /// during the call: copy what you keep. Answer with `session.offer(_:)`. Treat `message` as
    /// untrusted bytes: a malformed one should get an error response and change nothing.
    mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer)

    /// A session closed (its close entry is committed); `session` is not usable afterwards.
    mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason)

    /// The timer `correlationId` (scheduled with `Cluster.scheduleTimer`) expired: its timer-event
    /// entry is committed, at `timestamp` ≥ the deadline. Each scheduled timer fires at most once,
    /// and a cancelled or rescheduled one never fires for its old deadline. The same rules as for a
    /// session message hold; scheduling the next timer from here is the way to repeat one.
    mutating func onTimerEvent(correlationId: Int64, timestamp: ClusterTime)

    /// Writes the service's whole state to `writer`, at the log position `Cluster.logPosition`
    /// (every replica snapshots at the same position). Write only what `onStart` needs to carry on
    /// exactly as if it had applied the log up to here; the runtime keeps the timers and sessions
    /// itself. Do not change state, schedule timers or offer messages here. Throw to abandon the snapshot.
    mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws

    /// This member's role changed. Not sequenced through the log: replicas see it at different
    /// points, so never let it change replicated state, schedule timers or close sessions.
    mutating func onRoleChange(_ role: ClusterRole)

    /// The node is shutting down; no further calls follow. Do not change replicated state here.
    mutating func onTerminate(cluster: Cluster)

    /// The version of the state format `onTakeSnapshot` writes (stored in the snapshot header and
    /// given back as `SnapshotReader.serviceVersion`). Raise it when the format changes.
    var snapshotVersion: UInt32 { get }
}

extension ClusteredService {
    public mutating func onTimerEvent(correlationId: Int64, timestamp: ClusterTime) {}
    public mutating func onRoleChange(_ role: ClusterRole) {}
    public mutating func onTerminate(cluster: Cluster) {}
    public var snapshotVersion: UInt32 { 1 }
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
    /// The service closed it (`Cluster.closeSession(id:)`).
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
