import KeelCore

// Read-only views of the leader's state for the runtime's cluster-wide commands (leadership
// transfer, orderly shutdown).
extension RaftCore {
    /// Leader: the member leadership is being handed to, while the transfer is under way (the core
    /// refuses proposals meanwhile; it gives up after an election timeout).
    public var leadershipTransferTarget: MemberID? { role == .leader ? transferTarget : nil }

    /// Leader: the position up to which `member`'s log is known to match this one (nil on a
    /// follower, or for a member not in the configuration).
    public func matchPosition(of member: MemberID) -> LogPosition? {
        guard role == .leader, let slot = slot(of: member) else { return nil }
        return slot == selfSlot ? termIndex.endPosition : progress[slot].matchPosition
    }
}
