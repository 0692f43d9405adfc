import Glibc
import KeelCore
import Synchronization
import Testing
@testable import KeelIO

/// Appends `recordCount` records with linked write+datasync, one in flight at a time, idling in the
/// kernel while each is on its way: the agent's completions must end the kernel waits.
final class AppendingAgent: Agent {
    let roleName = "appender"
    let storage: IOUringStorage
    let recordCount: Int
    let log: AgentLog
    let completed = Atomic<Int>(0)
    private var file = FileID(rawValue: -1)
    private var completions = IOCompletionBuffer(capacity: 8)
    private let record = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 64)
    private var next = 0
    private var inFlight = false

    init(storage: IOUringStorage, recordCount: Int, log: AgentLog) {
        self.storage = storage
        self.recordCount = recordCount
        self.log = log
    }

    deinit { record.deallocate() }

    func onStart() throws {
        file = try storage.openFile("appended", create: true)
        try storage.preallocate(file, bytes: Int64(recordCount * record.count))
    }

    func doWork(nowNanos: Int64) throws -> Int {
        log.dutyCycles.add(1, ordering: .relaxed)
        var work = 0
        storage.reapCompletions(into: &completions)
        for index in 0..<completions.count {
            let completion = completions[index]
            if let error = completion.error { throw error }
            if completion.operation == .datasync {
                inFlight = false
                completed.add(1, ordering: .relaxed)
            }
            work += 1
        }
        completions.removeAll()
        if !inFlight && next < recordCount {
            record.initializeMemory(as: UInt8.self, repeating: UInt8(truncatingIfNeeded: next))
            try storage.submitWrite(
                file, at: Int64(next * record.count), UnsafeRawBufferPointer(record), token: IOToken(UInt64(next)), thenDatasync: true)
            try storage.flushSubmissions()
            next += 1
            inFlight = true
            work += 1
        }
        if next == recordCount && !inFlight { log.record("done") }
        return work
    }

    func onClose() { storage.closeFile(file) }
}

@Suite struct IOAgentTests {
    @Test func anAgentOnItsOwnThreadIsWokenByItsCompletions() throws {
        let directory = TemporaryDirectory()
        let log = AgentLog()
        let ring = try Ring()
        let storage = try IOUringStorage(directory: directory.path, ring: ring)
        let agent = AppendingAgent(storage: storage, recordCount: 20, log: log)
        let waker = ring.waker
        // A 30 s kernel wait: finishing in time proves completions, not timeouts, end the waits.
        let duty = AgentDuty(agent: agent, idleStrategy: KernelWaitIdleStrategy(ring: ring, timeoutNanos: 30_000_000_000))
        let runner = try AgentRunner(duty, waker: waker)
        #expect(eventually(timeoutNanos: 20_000_000_000) { log.count("done") > 0 })
        try runner.close()
        // Read the result back through a storage of our own (the agent's stayed on its thread).
        let checkRing = try Ring()
        let check = try IOUringStorage(directory: directory.path, ring: checkRing, createDirectory: false)
        let file = try check.openFile("appended", create: false)
        let contents = try check.read(file, at: 0, count: 20 * 512)
        #expect(contents.count == 20 * 512)
        #expect((0..<20).allSatisfy { index in contents[(index * 512)..<((index + 1) * 512)].allSatisfy { $0 == UInt8(index) } })
    }
}
