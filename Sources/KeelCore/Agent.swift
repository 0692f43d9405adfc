/// A duty-cycle agent (DESIGN.md decision 8; Agrona's `Agent`): the runner calls `doWork` in a loop
/// and idles according to its idle strategy when an iteration found nothing to do.
public protocol Agent: AnyObject {
    /// A short name for the agent's thread and for messages ("consensus", "service").
    var roleName: String { get }
    /// Called once on the agent's own thread before the first duty cycle.
    func onStart() throws
    /// One duty cycle: do whatever work is ready, without blocking, and return how much was done
    /// (0 means idle). `nowNanos` is the monotonic clock read once for the cycle.
    func doWork(nowNanos: Int64) throws -> Int
    /// Called once on the agent's own thread after the last duty cycle.
    func onClose()
}

extension Agent {
    public func onStart() throws {}
    public func onClose() {}
}

/// What an agent's thread does after a duty cycle, given how much work the cycle did.
public protocol IdleStrategy {
    /// Called after every duty cycle; idles when `workCount` is 0 and resets its back-off otherwise.
    mutating func idle(workCount: Int)
    /// Forgets any back-off state.
    mutating func reset()
}
