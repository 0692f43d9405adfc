import KeelCore

/// Virtual time for a simulation: a monotonic nanosecond count that moves only when the simulator
/// advances it. Several `SimulatedClock`s may share one, so that every member of a simulated
/// cluster sees the same passage of time through its own (possibly skewed) clock.
public final class SimulatedTimeSource {
    /// Nanoseconds since the start of the simulation.
    public private(set) var nowNanos: Int64

    /// Time starting at `startNanos`.
    public init(startNanos: Int64 = 0) {
        precondition(startNanos >= 0, "virtual time starts at or after zero")
        nowNanos = startNanos
    }

    /// Moves time forward by `nanos` (never backwards).
    public func advance(byNanos nanos: Int64) {
        precondition(nanos >= 0, "virtual time never goes backwards")
        nowNanos += nanos
    }

    /// Moves time forward to `nanos`; a time in the past is a bug in the simulator.
    public func advance(toNanos nanos: Int64) {
        precondition(nanos >= nowNanos, "virtual time never goes backwards")
        nowNanos = nanos
    }
}

/// A `Clock` over virtual time. Monotonic time is the time source's; epoch time is
/// `epochBaseNanos + monotonic + skewNanos`, so members given different skews disagree about the
/// wall clock the way real machines do, and changing `skewNanos` makes the wall clock jump.
public final class SimulatedClock: Clock {
    /// 2026-01-01T00:00:00Z, a plausible wall-clock origin for simulations.
    public static let defaultEpochBaseNanos: Int64 = 1_767_225_600_000_000_000

    /// The virtual time this clock reads (possibly shared with other clocks).
    public let timeSource: SimulatedTimeSource
    /// The wall-clock time at monotonic zero.
    public var epochBaseNanos: Int64
    /// How far this clock's wall clock is ahead (positive) or behind (negative) the true one.
    public var skewNanos: Int64

    /// A clock reading `timeSource` (a new one of its own by default).
    public init(
        timeSource: SimulatedTimeSource = SimulatedTimeSource(),
        epochBaseNanos: Int64 = SimulatedClock.defaultEpochBaseNanos,
        skewNanos: Int64 = 0
    ) {
        self.timeSource = timeSource
        self.epochBaseNanos = epochBaseNanos
        self.skewNanos = skewNanos
    }

    /// Advances the underlying time source (and so every clock sharing it) by `nanos`.
    public func advance(byNanos nanos: Int64) { timeSource.advance(byNanos: nanos) }

    public func monotonicNanos() -> Int64 { timeSource.nowNanos }

    public func epochNanos() -> Int64 { epochBaseNanos + timeSource.nowNanos + skewNanos }
}
