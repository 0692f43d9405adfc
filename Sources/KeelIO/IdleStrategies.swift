import CKeelShims
import Glibc
import KeelCore

// Idle strategies (DESIGN.md decision 8). On a 2-core machine a spinning agent starves its
// neighbour, so the default is `KernelWaitIdleStrategy`; the spinning ones are for machines with a
// core per agent.

/// Never gives the core away: a `pause` hint per idle cycle. Lowest latency, one core per agent.
public struct BusySpinIdleStrategy: IdleStrategy, Sendable {
    public init() {}
    @inline(__always) public mutating func idle(workCount: Int) { if workCount == 0 { keel_cpu_relax() } }
    public mutating func reset() {}
}

/// Offers the core to other threads (sched_yield) on every idle cycle.
public struct YieldIdleStrategy: IdleStrategy, Sendable {
    public init() {}
    @inline(__always) public mutating func idle(workCount: Int) { if workCount == 0 { sched_yield() } }
    public mutating func reset() {}
}

/// Spins, then yields, then sleeps for exponentially growing periods up to a maximum (Agrona's
/// BackoffIdleStrategy). Any work resets it to spinning.
public struct BackoffIdleStrategy: IdleStrategy, Sendable {
    /// Idle cycles spent spinning before yielding.
    public let maxSpins: Int
    /// Idle cycles spent yielding before sleeping.
    public let maxYields: Int
    /// The first sleep; each following one doubles, up to `maxParkNanos`.
    public let minParkNanos: Int64
    /// The longest sleep.
    public let maxParkNanos: Int64

    private var spins = 0
    private var yields = 0
    /// The next sleep's length; 0 while still spinning or yielding.
    public private(set) var parkNanos: Int64 = 0

    public init(maxSpins: Int = 100, maxYields: Int = 10, minParkNanos: Int64 = 1_000, maxParkNanos: Int64 = 1_000_000) {
        precondition(maxSpins >= 0 && maxYields >= 0, "spin and yield counts must not be negative")
        precondition(minParkNanos > 0 && maxParkNanos >= minParkNanos, "park periods must be positive and ordered")
        self.maxSpins = maxSpins
        self.maxYields = maxYields
        self.minParkNanos = minParkNanos
        self.maxParkNanos = maxParkNanos
    }

    public mutating func idle(workCount: Int) {
        if workCount > 0 { reset(); return }
        if spins < maxSpins {
            spins += 1
            keel_cpu_relax()
        } else if yields < maxYields {
            yields += 1
            sched_yield()
        } else {
            if parkNanos == 0 { parkNanos = minParkNanos }
            var period = timespec(tv_sec: Int(parkNanos / 1_000_000_000), tv_nsec: Int(parkNanos % 1_000_000_000))
            nanosleep(&period, nil)
            parkNanos = min(parkNanos * 2, maxParkNanos)
        }
    }

    public mutating func reset() {
        spins = 0
        yields = 0
        parkNanos = 0
    }
}

/// The default: waits in the kernel on the agent's ring until a completion arrives, another thread
/// calls the ring's `Waker.wake()`, or `timeoutNanos` passes (io_uring submit-and-wait with a
/// timeout). After a busy cycle it only submits what the cycle queued (no system call if nothing).
/// Must run on the ring's thread.
public struct KernelWaitIdleStrategy: IdleStrategy {
    /// The ring the agent's I/O goes through.
    public let ring: Ring
    /// The longest wait; bounds how late the agent notices time-driven work (timers, heartbeats).
    public var timeoutNanos: Int64
    /// The last error the ring reported while idling, if any (the agent's own calls see it too).
    public private(set) var lastError: IOError?

    public init(ring: Ring, timeoutNanos: Int64 = 1_000_000) {
        precondition(timeoutNanos > 0, "a kernel wait needs a positive timeout")
        self.ring = ring
        self.timeoutNanos = timeoutNanos
    }

    public mutating func idle(workCount: Int) {
        do {
            if workCount > 0 {
                try ring.submit()
            } else {
                try ring.wait(timeoutNanos: timeoutNanos)
            }
        } catch {
            lastError = error
            // Do not turn a persistent ring failure into a hot loop: sleep as the wait would have.
            var period = timespec(tv_sec: Int(timeoutNanos / 1_000_000_000), tv_nsec: Int(timeoutNanos % 1_000_000_000))
            nanosleep(&period, nil)
        }
    }

    public mutating func reset() {}
}
