import Glibc

/// Statistics a fault proxy keeps (bytes by direction, connections).
public struct FaultProxyStatistics: Equatable, Sendable {
    /// Client connections accepted on the listen port.
    public var connectionsAccepted = 0
    /// Proxied connections open now.
    public var connectionsOpen = 0
    /// Bytes forwarded from clients to the target.
    public var bytesForwardedToTarget: Int64 = 0
    /// Bytes forwarded from the target to clients.
    public var bytesForwardedToClient: Int64 = 0
    /// Bytes discarded on their way to the target.
    public var bytesDroppedToTarget: Int64 = 0
    /// Bytes discarded on their way to clients.
    public var bytesDroppedToClient: Int64 = 0
    /// The mode in force.
    public var mode: FaultProxyMode = .pass
}

/// What the controlling threads and the proxy's own thread share, behind one pthread mutex (KeelPOSIX
/// imports only Glibc and KeelCore): commands waiting to be applied, how many have been applied,
/// and the statistics. A condition variable lets `apply` wait until its command took effect.
final class FaultProxyMailbox: @unchecked Sendable {
    // Safe because: every access to these fields happens with `mutex` held.
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let applied: UnsafeMutablePointer<pthread_cond_t>
    private var pending: [FaultProxyCommand] = []
    private var submittedCount: Int64 = 0
    private var appliedCount: Int64 = 0
    private var stopRequested = false
    private var joinClaimed = false
    private var stats = FaultProxyStatistics()

    init() {
        mutex = .allocate(capacity: 1)
        applied = .allocate(capacity: 1)
        precondition(pthread_mutex_init(mutex, nil) == 0, "pthread_mutex_init failed")
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        precondition(pthread_cond_init(applied, &attributes) == 0, "pthread_cond_init failed")
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(applied)
        pthread_mutex_destroy(mutex)
        applied.deallocate()
        mutex.deallocate()
    }

    private func locked<T>(_ body: () -> T) -> T {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return body()
    }

    /// Queues `command`; returns its sequence number for `waitUntilApplied`.
    func submit(_ command: FaultProxyCommand) -> Int64 {
        locked {
            pending.append(command)
            submittedCount += 1
            return submittedCount
        }
    }

    /// Waits until command `sequence` has been applied or `timeoutNanos` passed; true when applied.
    func waitUntilApplied(_ sequence: Int64, timeoutNanos: Int64) -> Bool {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        let deadlineNanos = Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec) + timeoutNanos
        var deadline = timespec(tv_sec: Int(deadlineNanos / 1_000_000_000), tv_nsec: Int(deadlineNanos % 1_000_000_000))
        return locked {
            while appliedCount < sequence && !stopRequested {
                if pthread_cond_timedwait(applied, mutex, &deadline) == ETIMEDOUT { break }
            }
            return appliedCount >= sequence
        }
    }

    /// The proxy thread takes the waiting commands (and whether to stop).
    func take(into commands: inout [FaultProxyCommand]) -> Bool {
        locked {
            commands.append(contentsOf: pending)
            pending.removeAll(keepingCapacity: true)
            return stopRequested
        }
    }

    /// The proxy thread reports `count` more commands applied.
    func markApplied(_ count: Int) {
        guard count > 0 else { return }
        locked {
            appliedCount += Int64(count)
            pthread_cond_broadcast(applied)
        }
    }

    func requestStop() {
        locked {
            stopRequested = true
            pthread_cond_broadcast(applied)
        }
    }

    /// True for the first caller only: that caller joins the proxy thread.
    func claimJoin() -> Bool {
        locked {
            defer { joinClaimed = true }
            return !joinClaimed
        }
    }

    func updateStatistics(_ change: (inout FaultProxyStatistics) -> Void) { locked { change(&stats) } }

    var statistics: FaultProxyStatistics { locked { stats } }
}
