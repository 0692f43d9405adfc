/// When to try a failed connect again: exponential backoff with seeded jitter, capped, reset by
/// a success. Transports leave retrying to their callers (a refused or timed-out connect is
/// just a completion); callers keep one of these per peer and ask it for the next attempt time.
///
/// Delays double from `initialDelayNanos` up to `maxDelayNanos`; each is then drawn uniformly
/// from [delay/2, delay] so that members restarting together do not reconnect in lock-step.
public struct ConnectBackoff: Sendable {
    /// The delay after the first failure (before jitter).
    public let initialDelayNanos: Int64
    /// The longest delay (before jitter).
    public let maxDelayNanos: Int64
    /// Failures since the last success.
    public private(set) var consecutiveFailures = 0
    private var random: SeededRandom

    public init(initialDelayNanos: Int64 = 10_000_000, maxDelayNanos: Int64 = 1_000_000_000, seed: UInt64) {
        precondition(initialDelayNanos > 0 && maxDelayNanos >= initialDelayNanos, "backoff delays must be positive and ordered")
        self.initialDelayNanos = initialDelayNanos
        self.maxDelayNanos = maxDelayNanos
        random = SeededRandom(seed: seed)
    }

    /// Records a failed attempt at `nowNanos`; returns when to try again.
    public mutating func failed(nowNanos: Int64) -> Int64 {
        var delay = initialDelayNanos
        var doublings = 0
        while doublings < consecutiveFailures && delay < maxDelayNanos {
            delay *= 2
            doublings += 1
        }
        delay = min(delay, maxDelayNanos)
        consecutiveFailures += 1
        return nowNanos + random.integer(in: delay / 2...delay)
    }

    /// Records a successful connect: the next failure starts from the initial delay again.
    public mutating func succeeded() { consecutiveFailures = 0 }
}
