import KeelCore
import KeelIO
import KeelRuntime
import KeelService

/// The service thread's body under separate or adaptive threading: runs the service agent while
/// `ServicePlacement` gives it to this thread, and — adaptive — gives it to the consensus thread
/// once both agents' work has been light for a while (`AdaptiveThreading`).
final class ServiceHost<Service: ClusteredService>: Agent {
    let roleName = "service"
    let placement: ServicePlacement<Service>
    let shared: SharedNodeState
    /// Nil: separate threading, the agent never leaves this thread.
    let rules: AdaptiveThreading?
    let clock = SystemClock()
    var window: LoadWindow
    var lightWindows = WindowStreak()
    /// Work (entries applied, mostly) in the current window.
    var windowWork = 0
    var eventHandler: ((String) -> Void)?

    /// The service thread's ring (only to wait on while the agent comes back at the stop).
    let ring: Ring

    init(placement: ServicePlacement<Service>, shared: SharedNodeState, adaptive: Bool, ring: Ring) {
        self.ring = ring
        self.placement = placement
        self.shared = shared
        self.rules = adaptive ? placement.rules : nil
        window = LoadWindow(windowNanos: placement.rules.windowNanos)
    }

    func onStart() throws {
        try placement.agent!.onStart()
    }

    func doWork(nowNanos: Int64) throws -> Int {
        guard placement.owner == .serviceThread, let agent = placement.agent else { return 0 }
        let work = try agent.doWork(nowNanos: nowNanos)
        windowWork += work
        guard let rules, let load = window.add(startNanos: nowNanos, endNanos: clock.monotonicNanos()) else { return work }
        let entries = windowWork
        windowWork = 0
        let consensusLoad = Double(placement.consensusLoadMillionths.load(ordering: .relaxed)) / 1_000_000
        let combined = load + consensusLoad
        // Restore and replay after a start stay here.
        let replayed = shared.replayDone.load(ordering: .acquiring)
        let light = combined <= rules.moveInLoad && entries <= rules.moveInEntriesPerWindow && replayed
        if lightWindows.record(light) >= rules.moveInWindows {
            lightWindows.reset()
            window.reset()
            agent.entriesPerCycleLimit = rules.entriesPerCycleOnConsensusThread
            agent.holdsSnapshotMarkers = true
            eventHandler?(
                "service agent moves to the consensus thread (load \(percent(load)) service + \(percent(consensusLoad)) consensus, \(entries) entries in the last of \(rules.moveInWindows) light windows)")
            placement.handOver(to: .consensusThread)
        }
        return work
    }

    /// Takes the agent back from the consensus thread (it answers at its next duty cycle, or when it
    /// stops), then stops the service.
    func onClose() {
        guard let agent = placement.agent else { return }
        if !placement.requestReturn() {
            let deadline = clock.monotonicNanos() + 10_000_000_000
            while placement.owner != .serviceThread {
                guard clock.monotonicNanos() < deadline else {
                    eventHandler?("the consensus thread did not hand the service agent back within 10 s: the service is not terminated")
                    return
                }
                placement.consensusWaker.wake()
                try? ring.wait(timeoutNanos: 1_000_000)
            }
        }
        agent.holdsSnapshotMarkers = false
        agent.entriesPerCycleLimit = nil
        agent.onClose()
    }
}

/// The service thread's idle strategy: a kernel wait on its ring, short while the thread runs the
/// agent (as the agent's own strategy would be), long while the consensus thread runs it (a
/// hand-over wakes the ring at once).
struct ServiceIdleStrategy<Service: ClusteredService>: IdleStrategy {
    var wait: KernelWaitIdleStrategy
    let placement: ServicePlacement<Service>
    let activeTimeoutNanos: Int64

    init(ring: Ring, placement: ServicePlacement<Service>, timeoutNanos: Int64 = 1_000_000) {
        wait = KernelWaitIdleStrategy(ring: ring, timeoutNanos: timeoutNanos)
        self.placement = placement
        activeTimeoutNanos = timeoutNanos
    }

    mutating func idle(workCount: Int) {
        wait.timeoutNanos = placement.runsOnServiceThread ? activeTimeoutNanos : 100_000_000
        wait.idle(workCount: workCount)
    }

    mutating func reset() {}
}

func percent(_ fraction: Double) -> String {
    "\(Int((fraction * 100).rounded()))%"
}
