import Glibc
import KeelCore

/// The machine's clocks: CLOCK_MONOTONIC for durations and timeouts, CLOCK_REALTIME for epoch time.
/// A value type with no state; reading it is a vDSO call, no system call.
public struct SystemClock: Clock, Sendable {
    public init() {}

    @inline(__always)
    public func monotonicNanos() -> Int64 { Self.read(CLOCK_MONOTONIC) }

    @inline(__always)
    public func epochNanos() -> Int64 { Self.read(CLOCK_REALTIME) }

    @inline(__always)
    private static func read(_ clock: clockid_t) -> Int64 {
        var time = timespec()
        // Cannot fail for these clocks with a valid pointer.
        precondition(clock_gettime(clock, &time) == 0, "clock_gettime failed")
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }
}
