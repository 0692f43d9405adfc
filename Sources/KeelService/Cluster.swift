import KeelCore

/// What the runtime does for a `Cluster` handle (implemented by the service agent).
package protocol ClusterControl: AnyObject {
    func scheduleTimer(correlationId: Int64, deadline: ClusterTime)
    func cancelTimer(correlationId: Int64) -> Bool
    func session(id: Int64) -> ClientSession?
    func closeSession(id: Int64) -> Bool
}

/// The service's view of its node, valid for the node's lifetime (handed to `onStart`).
///
/// Updated by the runtime on the service agent's thread before each call, so reading it from a
/// service callback always gives the values of the entry being applied. Use it only from the
/// service's callbacks (its thread).
public final class Cluster {
    /// This member's id.
    public let memberId: MemberID
    /// This member's current role.
    public package(set) var role: ClusterRole {
        get { fields.pointee.role }
        set { fields.pointee.role = newValue }
    }
    /// The cluster time of the entry being applied (or of the last one applied): nanoseconds since
    /// the epoch, stamped by the leader, never going backwards — across leader changes too.
    public package(set) var time: ClusterTime {
        get { fields.pointee.time }
        set { fields.pointee.time = newValue }
    }
    /// The log position after the entry being applied (or the last one applied).
    public package(set) var logPosition: LogPosition {
        get { fields.pointee.logPosition }
        set { fields.pointee.logPosition = newValue }
    }
    /// True while an entry is being applied: timers may be scheduled and cancelled only then.
    public package(set) var isApplyingEntry: Bool {
        get { fields.pointee.isApplyingEntry }
        set { fields.pointee.isApplyingEntry = newValue }
    }
    private struct Fields {
        var role: ClusterRole = .follower
        var time: ClusterTime = .zero
        var logPosition: LogPosition = .zero
        var isApplyingEntry = false
    }
    // Outside the object: stored `var`s of a class are checked for exclusive access at run time on
    // every access, and the runtime writes these for every entry it applies.
    private let fields: UnsafeMutablePointer<Fields>
    /// unowned(unsafe), not weak: a weak reference gives the agent a side table, which makes every
    /// retain and release of it take the slow path — per message, for each response offered. The
    /// agent owns this handle and is used only while it applies an entry.
    package unowned(unsafe) var control: (any ClusterControl)?

    /// A handle for member `memberId` (made by the runtime).
    public init(memberId: MemberID) {
        self.memberId = memberId
        fields = .allocate(capacity: 1)
        fields.initialize(to: Fields())
    }

    deinit {
        fields.deinitialize(count: 1)
        fields.deallocate()
    }

    /// Schedules timer `correlationId` to fire (`ClusteredService.onTimerEvent`) once cluster time
    /// reaches `deadline` — never before, exactly once, at the same log position on every replica. A
    /// timer already pending under the same id is rescheduled (its old deadline never fires). A
    /// deadline already past fires as soon as the leader's next duty cycle.
    ///
    /// Only while an entry is applied (`isApplyingEntry`): from `onStart`, `onRoleChange` or
    /// `onTerminate` replicas would diverge, so it stops the node with a message saying so.
    public func scheduleTimer(correlationId: Int64, deadline: ClusterTime) {
        precondition(isApplyingEntry, "Cluster.scheduleTimer may be called only while an entry is applied (onSessionOpen/Message/Close, onTimerEvent): elsewhere replicas would diverge")
        control?.scheduleTimer(correlationId: correlationId, deadline: deadline)
    }

    /// Cancels timer `correlationId`; returns whether one was pending. A cancelled timer never
    /// fires, even if its deadline has passed and the leader already appended its event.
    /// Only while an entry is applied (as `scheduleTimer`).
    @discardableResult
    public func cancelTimer(correlationId: Int64) -> Bool {
        precondition(isApplyingEntry, "Cluster.cancelTimer may be called only while an entry is applied (onSessionOpen/Message/Close, onTimerEvent): elsewhere replicas would diverge")
        return control?.cancelTimer(correlationId: correlationId) ?? false
    }

    /// The open session `id`, if any.
    public func session(id: Int64) -> ClientSession? {
        control?.session(id: id)
    }

    /// Asks the cluster to close session `id` (reason `.closedByService`); returns false if no such
    /// session is open. The close is a log entry: `onSessionClose` follows once it is committed (the
    /// session stays usable until then).
    @discardableResult
    public func closeSession(id: Int64) -> Bool {
        control?.closeSession(id: id) ?? false
    }
}
