import KeelCore
import KeelIO
import KeelRuntime
import KeelService
import Synchronization

/// The rules of `ClusterNode.Threading.adaptive` (docs/architecture.md, "Where the service agent
/// runs"): the service agent runs on the consensus thread while the node is lightly loaded — no
/// thread hand-off between a commit and its application, nor between a response and its send — and
/// on a thread of its own when one thread could no longer carry both agents.
public struct AdaptiveThreading: Sendable, Equatable {
    /// The length of one load-measuring window.
    public var windowNanos: Int64 = 10_000_000
    /// On the consensus thread: the service moves to its own thread after `moveOutWindows` windows
    /// in a row in which the thread spent at least this fraction of the time in duty-cycle work
    /// (consensus and service together; the kernel waits excluded).
    public var moveOutLoad: Double = 0.5
    public var moveOutWindows: Int = 2
    /// On its own thread: the service moves back after `moveInWindows` windows in a row in which
    /// the two threads' work together took at most this fraction of the time. Well below
    /// `moveOutLoad`, so that a load between the two keeps whichever placement it has.
    public var moveInLoad: Double = 0.2
    public var moveInWindows: Int = 10
    /// ... and in which the service applied at most this many entries each. The busy share alone
    /// misleads on an oversubscribed machine: a thread waiting for a core is not busy, yet one
    /// thread then gets half the CPU that two would.
    public var moveInEntriesPerWindow: Int = 256
    /// On the consensus thread the service applies at most this many entries per duty cycle; a
    /// backlog beyond them moves it to its own thread at once.
    public var entriesPerCycleOnConsensusThread: Int = 1024

    public init() {}
}

/// Who runs the service agent of a node with adaptive threading, and the hand-over between its two
/// possible threads. Only the current owner changes the owner (apart from the service thread's
/// request to have the agent back when the node stops), and it stores the new owner with release
/// after its last use of the agent; the new owner loads it with acquire before its first use. So
/// the agent — and the service, its sessions and timers — is used by one thread at a time, and
/// each sees everything the previous one did.
final class ServicePlacement<Service: ClusteredService>: @unchecked Sendable {
    // Safe because: `agent` is written once, before the service thread starts, and afterwards used
    // only by the thread the `owner` atomic names, handed over with release/acquire as above.
    enum Owner: UInt8 {
        /// The service thread runs the agent (the start: restore and replay run there).
        case serviceThread
        /// The consensus thread runs the agent, after its own duty cycle.
        case consensusThread
        /// The consensus thread runs it, and the service thread (stopping) asked for it back.
        case returnRequested
    }

    let rules: AdaptiveThreading
    private let ownerRaw = Atomic<UInt8>(Owner.serviceThread.rawValue)
    /// The consensus thread's busy fraction in its last window while the service ran elsewhere, in
    /// millionths.
    let consensusLoadMillionths = Atomic<Int>(0)
    /// Hand-overs so far, each way (for tests and `keel stat`-style reporting).
    let movesOut = Atomic<Int>(0)
    let movesIn = Atomic<Int>(0)
    let serviceWaker: Waker
    let consensusWaker: Waker
    /// The agent (set by `ClusterNode.start` before the service thread starts).
    var agent: ServiceAgent<Service>?

    init(rules: AdaptiveThreading, serviceWaker: Waker, consensusWaker: Waker) {
        self.rules = rules
        self.serviceWaker = serviceWaker
        self.consensusWaker = consensusWaker
    }

    /// The current owner (acquire: the agent's state as its previous owner left it is visible after).
    var owner: Owner { Owner(rawValue: ownerRaw.load(ordering: .acquiring))! }

    /// True while the service thread runs the agent: only then must the agents wake each other.
    var runsOnServiceThread: Bool { ownerRaw.load(ordering: .relaxed) == Owner.serviceThread.rawValue }

    /// The owner gives the agent to the other thread (release), then wakes it.
    func handOver(to next: Owner) {
        ownerRaw.store(next.rawValue, ordering: .releasing)
        if next == .serviceThread {
            movesOut.add(1, ordering: .relaxed)
            serviceWaker.wake()
        } else {
            movesIn.add(1, ordering: .relaxed)
            consensusWaker.wake()
        }
    }

    /// The service thread, stopping: asks the consensus thread for the agent if it has it. True when
    /// the service thread owns it (at once, or after a request the consensus thread will answer).
    func requestReturn() -> Bool {
        ownerRaw.compareExchange(
            expected: Owner.consensusThread.rawValue, desired: Owner.returnRequested.rawValue, ordering: .acquiringAndReleasing
        ).original == Owner.serviceThread.rawValue
    }
}

/// Busy time over fixed windows of wall time: each duty cycle adds the time its work took; a
/// window's load is the busy fraction of it.
struct LoadWindow {
    let windowNanos: Int64
    private var startNanos: Int64 = .min
    private var busyNanos: Int64 = 0

    init(windowNanos: Int64) { self.windowNanos = windowNanos }

    /// Adds one duty cycle's work [start, end); returns the finished window's load when it ends.
    mutating func add(startNanos start: Int64, endNanos end: Int64) -> Double? {
        if startNanos == .min { startNanos = start }
        busyNanos += end &- start
        let elapsed = end &- startNanos
        guard elapsed >= windowNanos else { return nil }
        let load = Double(busyNanos) / Double(elapsed)
        startNanos = end
        busyNanos = 0
        return load
    }

    /// Starts afresh (after a hand-over: the old window measured the other placement).
    mutating func reset() {
        startNanos = .min
        busyNanos = 0
    }
}

/// Counts consecutive windows that meet a condition.
struct WindowStreak {
    private(set) var count = 0
    mutating func record(_ met: Bool) -> Int {
        count = met ? count + 1 : 0
        return count
    }
    mutating func reset() { count = 0 }
}

/// Wakes the other agent's ring through the calling thread's own ring (`Ring.queueWake`): the
/// wake-up leaves with that ring's next submit instead of costing an eventfd `write` of its own.
final class RingWakeSender: @unchecked Sendable {
    // Safe because: `ClusterNode` calls `wake()` only on `ring`'s thread — the consensus agent wakes
    // the service agent from the consensus thread, the service agent wakes the consensus agent only
    // while it runs on the service thread (`ServicePlacement.runsOnServiceThread`).
    private let ring: Ring
    private let target: RingDoorbell

    init(ring: Ring, target: RingDoorbell) {
        self.ring = ring
        self.target = target
    }

    func wake() {
        do { try ring.queueWake(target) } catch { target.waker.wake() }
    }
}
