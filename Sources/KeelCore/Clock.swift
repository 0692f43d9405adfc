/// Time, as an input (DESIGN.md decision 3). Nothing in Keel reads a clock except through this.
/// The real clock lives in KeelIO; the simulator's virtual clock in KeelSimulation.
public protocol Clock {
    /// Nanoseconds from an arbitrary fixed origin; never goes backwards. For timeouts and latency.
    func monotonicNanos() -> Int64
    /// Nanoseconds since the Unix epoch; may jump. Only the leader reads it, to stamp cluster time.
    func epochNanos() -> Int64
}
