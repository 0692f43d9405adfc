import KeelCore

/// The service's view of its node, valid for the node's lifetime (handed to `onStart`).
///
/// Updated by the runtime on the service agent's thread before each call, so reading it from a
/// service callback always gives the values of the entry being applied.
public final class Cluster {
    /// This member's id.
    public let memberId: MemberID
    /// This member's current role.
    public package(set) var role: ClusterRole = .follower
    /// The cluster time of the entry being applied (or of the last one applied).
    public package(set) var time: ClusterTime = .zero
    /// The log position after the entry being applied (or the last one applied).
    public package(set) var logPosition: LogPosition = .zero

    /// A handle for member `memberId` (made by the runtime).
    public init(memberId: MemberID) {
        self.memberId = memberId
    }
}
