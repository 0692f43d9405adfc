import KeelCore
import Synchronization

/// Why an agent stopped on its own: the error its `onStart` or `doWork` threw.
public struct AgentFailure: Error, CustomStringConvertible {
    /// Where the error was thrown.
    public enum Phase: String, Sendable { case onStart, doWork }
    /// The agent's role name.
    public let roleName: String
    public let phase: Phase
    /// The error the agent threw.
    public let underlying: any Error

    public var description: String { "agent \(roleName) stopped: \(phase) threw \(underlying)" }
}

/// Runs one agent on a thread of its own (DESIGN.md decision 8; Agrona's AgentRunner):
/// `onStart()`, then duty cycles — `doWork(nowNanos:)` followed by the idle strategy — until stopped,
/// then `onClose()`. All three run on the runner's thread, which is named after the agent.
///
/// The agent, its idle strategy and its clock move to the thread (`sending`): nothing else may
/// touch them afterwards. An error thrown by `onStart` or `doWork` stops the agent; it is passed
/// to the error handler (if any) on the agent's thread and rethrown by `close()`.
public final class AgentRunner: Sendable {
    /// The agent's role name (also its thread's name).
    public let roleName: String
    private let state: RunnerState
    private let thread: Mutex<KeelThread?>
    private let waker: Waker?

    /// What the runner and its thread share.
    private final class RunnerState: Sendable {
        let stopRequested = Atomic<Bool>(false)
        let isRunning = Atomic<Bool>(false)
        let dutyCycleCount = Atomic<Int>(0)
        let failure = Mutex<AgentFailure?>(nil)
    }

    /// Starts `duty.agent` on a new thread.
    ///
    /// Pass the agent and its idle strategy together in one `AgentDuty` when they share state (a
    /// `KernelWaitIdleStrategy` on the ring the agent's storage uses): the whole bundle moves to the
    /// thread as one.
    /// - Parameters:
    ///   - waker: woken by `close()` so that an agent waiting in the kernel notices the stop at
    ///     once (pass the agent ring's `waker` with `KernelWaitIdleStrategy`).
    ///   - errorHandler: called on the agent's thread with the failure that stopped it.
    public init<A: Agent & SendableMetatype, I: IdleStrategy & SendableMetatype, C: Clock & SendableMetatype>(
        _ duty: sending AgentDuty<A, I, C>, waker: Waker? = nil, errorHandler: (@Sendable (AgentFailure) -> Void)? = nil
    ) throws(IOError) {
        let roleName = duty.agent.roleName
        let state = RunnerState()
        self.roleName = roleName
        self.state = state
        self.waker = waker
        let started = try KeelThread.spawn(name: roleName) {
            Self.run(duty, state: state, errorHandler: errorHandler)
        }
        thread = Mutex(started)
    }

    /// Starts `agent` on a new thread, idling with `idleStrategy` and timed by the system's monotonic
    /// clock. When the two share state, use `init(_:waker:errorHandler:)` with an `AgentDuty`.
    public convenience init<A: Agent & SendableMetatype, I: IdleStrategy & SendableMetatype>(
        agent: sending A, idleStrategy: sending I, waker: Waker? = nil,
        errorHandler: (@Sendable (AgentFailure) -> Void)? = nil
    ) throws(IOError) {
        try self.init(AgentDuty(agent: agent, idleStrategy: idleStrategy), waker: waker, errorHandler: errorHandler)
    }

    deinit {
        // Never leave a thread running an agent nobody can stop.
        requestStop()
        joinThread()
    }

    /// True from the end of `onStart` until the loop ends.
    public var isRunning: Bool { state.isRunning.load(ordering: .acquiring) }
    /// Duty cycles run so far (for tests and counters).
    public var dutyCycleCount: Int { state.dutyCycleCount.load(ordering: .relaxed) }
    /// The failure that stopped the agent, if one did.
    public var failure: AgentFailure? { state.failure.withLock { $0 } }

    /// Asks the agent to stop after its current duty cycle, without waiting.
    public func requestStop() {
        state.stopRequested.store(true, ordering: .releasing)
        waker?.wake()
    }

    /// Stops the agent, waits for its thread to end (after `onClose()`), and rethrows the failure
    /// that stopped it, if any. Must not be called from the agent's own thread.
    public func close() throws(AgentFailure) {
        requestStop()
        joinThread()
        if let failure { throw failure }
    }

    private func joinThread() {
        let running = thread.withLock { thread -> KeelThread? in
            defer { thread = nil }
            return thread
        }
        running?.join()
    }

    private static func run<A: Agent, I: IdleStrategy, C: Clock>(
        _ duty: consuming AgentDuty<A, I, C>, state: RunnerState, errorHandler: (@Sendable (AgentFailure) -> Void)?
    ) {
        let agent = duty.agent
        func report(_ error: any Error, _ phase: AgentFailure.Phase) {
            let failure = AgentFailure(roleName: agent.roleName, phase: phase, underlying: error)
            state.failure.withLock { $0 = failure }
            errorHandler?(failure)
        }
        do {
            try agent.onStart()
        } catch {
            report(error, .onStart)
            agent.onClose()
            return
        }
        state.isRunning.store(true, ordering: .releasing)
        while !state.stopRequested.load(ordering: .acquiring) {
            let workCount: Int
            do {
                workCount = try agent.doWork(nowNanos: duty.clock.monotonicNanos())
            } catch {
                report(error, .doWork)
                break
            }
            state.dutyCycleCount.add(1, ordering: .relaxed)
            duty.idleStrategy.idle(workCount: workCount)
        }
        state.isRunning.store(false, ordering: .releasing)
        agent.onClose()
    }
}

/// An agent with the idle strategy and clock of its duty cycle: what an `AgentRunner` moves to its
/// thread, as one value.
public struct AgentDuty<A: Agent, I: IdleStrategy, C: Clock> {
    public var agent: A
    public var idleStrategy: I
    public var clock: C

    public init(agent: A, idleStrategy: I, clock: C) {
        self.agent = agent
        self.idleStrategy = idleStrategy
        self.clock = clock
    }
}

extension AgentDuty where C == SystemClock {
    /// An agent and its idle strategy, timed by the system's monotonic clock.
    public init(agent: A, idleStrategy: I) {
        self.init(agent: agent, idleStrategy: idleStrategy, clock: SystemClock())
    }
}
