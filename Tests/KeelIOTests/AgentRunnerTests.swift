import Glibc
import KeelCore
import Synchronization
import Testing
@testable import KeelIO

/// What an agent did, observed from the test's thread.
final class AgentLog: Sendable {
    struct Entry: Equatable { var event: String; var threadID: Int32 }
    private let entries = Mutex<[Entry]>([])
    let dutyCycles = Atomic<Int>(0)

    func record(_ event: String) {
        let entry = Entry(event: event, threadID: KeelThread.currentID)
        entries.withLock { $0.append(entry) }
    }
    var all: [Entry] { entries.withLock { $0 } }
    func events(_ name: String) -> [Entry] { all.filter { $0.event == name } }
    func count(_ name: String) -> Int { events(name).count }
}

struct AgentTestError: Error, Equatable { let code: Int }

/// Does one unit of work every cycle (never idle), or throws at a chosen cycle.
final class BusyAgent: Agent {
    let roleName: String
    let log: AgentLog
    let failAtCycle: Int?
    let failOnStart: Bool
    private var cycles = 0

    init(roleName: String = "busy", log: AgentLog, failAtCycle: Int? = nil, failOnStart: Bool = false) {
        self.roleName = roleName
        self.log = log
        self.failAtCycle = failAtCycle
        self.failOnStart = failOnStart
    }

    func onStart() throws {
        log.record("\(roleName).onStart")
        log.record("name:\(KeelThread.currentName)")
        if failOnStart { throw AgentTestError(code: -1) }
    }

    func doWork(nowNanos: Int64) throws -> Int {
        cycles += 1
        if cycles == 1 { log.record("\(roleName).doWork") }
        log.dutyCycles.add(1, ordering: .relaxed)
        if cycles == failAtCycle { throw AgentTestError(code: cycles) }
        return 1
    }

    func onClose() { log.record("\(roleName).onClose") }
}

/// Never has work: every cycle ends in the idle strategy.
final class IdleAgent: Agent {
    let roleName = "idle"
    let log: AgentLog
    init(log: AgentLog) { self.log = log }
    func doWork(nowNanos: Int64) throws -> Int {
        log.dutyCycles.add(1, ordering: .relaxed)
        return 0
    }
}

/// Waits until `condition` holds or `timeoutNanos` passes; returns whether it held.
func eventually(timeoutNanos: Int64 = 10_000_000_000, _ condition: () -> Bool) -> Bool {
    let start = nowNanos()
    while !condition() {
        if nowNanos() - start > timeoutNanos { return false }
        var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
        nanosleep(&pause, nil)
    }
    return true
}

@Suite struct AgentRunnerTests {
    @Test func aBusyAgentStopsPromptlyAndStartsAndClosesOnceOnItsOwnThread() throws {
        let log = AgentLog()
        let runner = try AgentRunner(agent: BusyAgent(roleName: "consensus", log: log), idleStrategy: BusySpinIdleStrategy())
        #expect(eventually { log.dutyCycles.load(ordering: .relaxed) > 1000 })
        #expect(runner.isRunning)
        let start = nowNanos()
        try runner.close()
        #expect(nowNanos() - start < 2_000_000_000, "close() of an agent busy every cycle must not hang")
        #expect(!runner.isRunning)
        #expect(log.count("consensus.onStart") == 1)
        #expect(log.count("consensus.onClose") == 1)
        let threads = Set(log.all.map(\.threadID))
        #expect(threads.count == 1, "onStart, doWork and onClose all run on the agent's thread")
        #expect(!threads.contains(KeelThread.currentID))
        #expect(log.events("name:consensus").count == 1, "the thread is named after the agent")
        #expect(log.all.last?.event == "consensus.onClose")
        let cyclesAtClose = log.dutyCycles.load(ordering: .relaxed)
        #expect(runner.dutyCycleCount == cyclesAtClose)
    }

    @Test func anErrorThrownByDoWorkStopsTheAgentAndIsReported() throws {
        let log = AgentLog()
        let handled = Mutex<[String]>([])
        let runner = try AgentRunner(
            agent: BusyAgent(log: log, failAtCycle: 3), idleStrategy: YieldIdleStrategy(),
            errorHandler: { failure in handled.withLock { $0.append(failure.description) } })
        #expect(eventually { log.count("busy.onClose") == 1 }, "the failing agent is closed without being asked")
        #expect(log.dutyCycles.load(ordering: .relaxed) == 3)
        #expect(throws: AgentFailure.self) { try runner.close() }
        do {
            try runner.close()
        } catch {
            #expect(error.phase == .doWork)
            #expect(error.roleName == "busy")
            #expect(error.underlying as? AgentTestError == AgentTestError(code: 3))
        }
        #expect(handled.withLock { $0 } == ["agent busy stopped: doWork threw AgentTestError(code: 3)"])
        #expect(log.count("busy.onStart") == 1)
        #expect(log.count("busy.onClose") == 1)
    }

    @Test func anErrorThrownByOnStartSkipsTheDutyCycleButStillCloses() throws {
        let log = AgentLog()
        let runner = try AgentRunner(agent: BusyAgent(log: log, failOnStart: true), idleStrategy: BusySpinIdleStrategy())
        do {
            try runner.close()
            Issue.record("close() must rethrow the onStart failure")
        } catch {
            #expect(error.phase == .onStart)
        }
        #expect(log.count("busy.doWork") == 0)
        #expect(log.count("busy.onClose") == 1)
    }

    @Test func theCompositeAgentRunsAllItsAgentsEveryCycleOnOneThread() throws {
        let first = AgentLog()
        let second = AgentLog()
        let composite = CompositeAgent([BusyAgent(roleName: "a", log: first), BusyAgent(roleName: "b", log: second)])
        #expect(composite.roleName == "a+b")
        let runner = try AgentRunner(agent: composite, idleStrategy: BusySpinIdleStrategy())
        #expect(eventually { first.dutyCycles.load(ordering: .relaxed) > 100 })
        try runner.close()
        #expect(first.dutyCycles.load(ordering: .relaxed) == second.dutyCycles.load(ordering: .relaxed))
        #expect(first.events("a.onStart").first?.threadID == second.events("b.onStart").first?.threadID)
        #expect(first.count("a.onClose") == 1 && second.count("b.onClose") == 1)
    }

    @Test func aCompositeWhoseSecondAgentFailsToStartClosesOnlyTheFirst() throws {
        let first = AgentLog()
        let second = AgentLog()
        let composite = CompositeAgent([
            BusyAgent(roleName: "a", log: first), BusyAgent(roleName: "b", log: second, failOnStart: true),
        ])
        let runner = try AgentRunner(agent: composite, idleStrategy: BusySpinIdleStrategy())
        #expect(throws: AgentFailure.self) { try runner.close() }
        #expect(first.count("a.onClose") == 1)
        #expect(second.count("b.onStart") == 1)
        #expect(second.count("b.onClose") == 0, "an agent whose onStart failed is not closed by the composite")
    }

    @Test func anIdleAgentWaitingInTheKernelStopsAtOnceWhenWoken() throws {
        let log = AgentLog()
        let ring = try Ring()
        let waker = ring.waker
        let runner = try AgentRunner(
            agent: IdleAgent(log: log), idleStrategy: KernelWaitIdleStrategy(ring: ring, timeoutNanos: 30_000_000_000), waker: waker)
        #expect(eventually { log.dutyCycles.load(ordering: .relaxed) >= 1 })
        let start = nowNanos()
        try runner.close()
        #expect(nowNanos() - start < 10_000_000_000, "close() must wake the kernel wait, not sit out the 30 s timeout")
        #expect(log.dutyCycles.load(ordering: .relaxed) <= 3, "an idle agent sleeps in the kernel instead of spinning")
    }

    @Test func anIdleAgentUnderYieldStopsInBoundedTime() throws {
        let log = AgentLog()
        let runner = try AgentRunner(agent: IdleAgent(log: log), idleStrategy: YieldIdleStrategy())
        #expect(eventually { log.dutyCycles.load(ordering: .relaxed) > 100 })
        try runner.close()
        #expect(!runner.isRunning)
    }
}

@Suite struct IdleStrategyTests {
    @Test func backoffSpinsThenYieldsThenSleepsForDoublingPeriodsUpToTheMaximum() {
        var strategy = BackoffIdleStrategy(maxSpins: 2, maxYields: 1, minParkNanos: 1_000, maxParkNanos: 4_000)
        for _ in 0..<3 { strategy.idle(workCount: 0) }
        #expect(strategy.parkNanos == 0, "two spins and one yield come before any sleep")
        var periods: [Int64] = []
        for _ in 0..<4 {
            strategy.idle(workCount: 0)
            periods.append(strategy.parkNanos)
        }
        #expect(periods == [2_000, 4_000, 4_000, 4_000])
        strategy.idle(workCount: 5)
        #expect(strategy.parkNanos == 0, "work resets the back-off")
        for _ in 0..<3 { strategy.idle(workCount: 0) }
        #expect(strategy.parkNanos == 0)
    }

    @Test func backoffSleepsAtLeastItsParkPeriod() {
        var strategy = BackoffIdleStrategy(maxSpins: 0, maxYields: 0, minParkNanos: 5_000_000, maxParkNanos: 5_000_000)
        let start = nowNanos()
        strategy.idle(workCount: 0)
        #expect(nowNanos() - start >= 4_000_000)
    }

    @Test func kernelWaitIdlesUntilItsTimeoutWhenNothingHappens() throws {
        var strategy = KernelWaitIdleStrategy(ring: try Ring(), timeoutNanos: 20_000_000)
        let start = nowNanos()
        strategy.idle(workCount: 0)
        #expect(nowNanos() - start >= 16_000_000)
        #expect(strategy.lastError == nil)
    }

    @Test func kernelWaitAfterWorkOnlySubmits() throws {
        let ring = try Ring()
        let owner = ring.registerOwner(completionCapacity: 4)
        try ring.queueNoOperation(owner: owner, operation: .write, token: IOToken(1))
        var strategy = KernelWaitIdleStrategy(ring: ring, timeoutNanos: 10_000_000_000)
        let start = nowNanos()
        strategy.idle(workCount: 1)
        #expect(nowNanos() - start < 5_000_000_000, "a busy cycle must not sleep")
        #expect(eventually { ring.reap(); return ring.pendingCompletionCount(for: owner) == 1 }, "the queued operation was submitted")
    }
}
