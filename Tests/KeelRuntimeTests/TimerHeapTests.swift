import KeelCore
@testable import KeelRuntime
import KeelService
import KeelSimulation
import Testing

@Suite("Timer heap, replicated timers and the consensus agent's timer set")
struct TimerHeapTests {
    @Test("the heap agrees with a naive oracle over 20,000 random schedules, reschedules, cancels and pops")
    func heapMatchesOracle() {
        var random = SeededRandom(seed: 42)
        var heap = TimerHeap(capacity: 4)
        var oracle: [Int64: PendingTimer] = [:]
        var sequence: Int64 = 0
        var now: Int64 = 0
        for _ in 0..<20_000 {
            let id = random.integer(in: 0...300)
            switch random.integer(in: 0...9) {
            case 0...4:
                sequence += 1
                let timer = PendingTimer(correlationId: id, deadline: ClusterTime(rawValue: now + random.integer(in: 0...1_000)), sequence: sequence)
                heap.schedule(timer)
                oracle[id] = timer
            case 5...6:
                let cancelled = heap.cancel(correlationId: id)
                #expect(cancelled == oracle.removeValue(forKey: id))
            default:
                now += random.integer(in: 0...200)
                // Pops every due timer, in (deadline, sequence) order.
                let due = oracle.values.filter { $0.deadline.rawValue <= now }
                    .sorted { $0.deadline != $1.deadline ? $0.deadline < $1.deadline : $0.sequence < $1.sequence }
                var popped: [PendingTimer] = []
                while let timer = heap.popDue(now: ClusterTime(rawValue: now)) { popped.append(timer) }
                #expect(popped == due)
                for timer in due { oracle.removeValue(forKey: timer.correlationId) }
            }
            #expect(heap.count == oracle.count)
            #expect(heap.timer(correlationId: id) == oracle[id])
        }
        var all: [PendingTimer] = []
        heap.forEach { all.append($0) }
        #expect(Set(all.map(\.correlationId)) == Set(oracle.keys))
    }

    @Test("rescheduling an id replaces its deadline, earlier or later; the heap holds one timer per id")
    func rescheduleReplaces() {
        var heap = TimerHeap()
        heap.schedule(PendingTimer(correlationId: 7, deadline: ClusterTime(rawValue: 100), sequence: 1))
        heap.schedule(PendingTimer(correlationId: 8, deadline: ClusterTime(rawValue: 50), sequence: 2))
        heap.schedule(PendingTimer(correlationId: 7, deadline: ClusterTime(rawValue: 10), sequence: 3))
        #expect(heap.count == 2)
        #expect(heap.earliest == PendingTimer(correlationId: 7, deadline: ClusterTime(rawValue: 10), sequence: 3))
        heap.schedule(PendingTimer(correlationId: 7, deadline: ClusterTime(rawValue: 500), sequence: 4))
        #expect(heap.popDue(now: ClusterTime(rawValue: 100))?.correlationId == 8)
        #expect(heap.popDue(now: ClusterTime(rawValue: 100)) == nil, "7 was moved to 500")
        #expect(heap.popDue(now: ClusterTime(rawValue: 500))?.sequence == 4)
        #expect(heap.isEmpty)
    }

    @Test("a timer event fires only the scheduling it names, not before its deadline, and only once")
    func replicatedTimersArbitrateEvents() {
        var timers = ReplicatedTimers()
        let first = timers.schedule(correlationId: 1, deadline: ClusterTime(rawValue: 100))
        let second = timers.schedule(correlationId: 1, deadline: ClusterTime(rawValue: 200))
        #expect(first != second)
        var fired = timers.fire(correlationId: 1, sequence: first, at: ClusterTime(rawValue: 150))
        #expect(!fired, "a rescheduled timer's old event is stale")
        fired = timers.fire(correlationId: 1, sequence: second, at: ClusterTime(rawValue: 199))
        #expect(!fired, "never early")
        fired = timers.fire(correlationId: 1, sequence: second, at: ClusterTime(rawValue: 200))
        #expect(fired)
        fired = timers.fire(correlationId: 1, sequence: second, at: ClusterTime(rawValue: 300))
        #expect(!fired, "never twice")
        let third = timers.schedule(correlationId: 2, deadline: ClusterTime(rawValue: 10))
        let cancelled = timers.cancel(correlationId: 2)
        let cancelledAgain = timers.cancel(correlationId: 2)
        #expect(cancelled && !cancelledAgain)
        fired = timers.fire(correlationId: 2, sequence: third, at: ClusterTime(rawValue: 50))
        #expect(!fired, "a cancelled timer never fires")
        #expect(timers.count == 0)
    }

    @Test("the timers round-trip through a snapshot, in short reads, with the same digest; bad counts are refused")
    func replicatedTimersSnapshotRoundTrip() throws {
        var timers = ReplicatedTimers()
        for id in 0..<500 { _ = timers.schedule(correlationId: Int64(id) * 37 % 1000, deadline: ClusterTime(rawValue: Int64(id) * 1_000)) }
        _ = timers.cancel(correlationId: 37)
        let writer = InMemorySnapshotWriter()
        try timers.write(to: writer)
        let restored = try ReplicatedTimers.read(from: InMemorySnapshotReader(bytes: writer.bytes))
        #expect(restored.timers == timers.timers)
        #expect(restored.nextSequence == timers.nextSequence)
        #expect(restored.digest() == timers.digest())
        var damaged = writer.bytes
        damaged[8] = 0xff  // the count
        #expect(throws: SnapshotFormatError.self) { try ReplicatedTimers.read(from: InMemorySnapshotReader(bytes: damaged)) }
        #expect(throws: SnapshotFormatError.self) { try ReplicatedTimers.read(from: InMemorySnapshotReader(bytes: Array(writer.bytes.dropLast(3)))) }
    }

    @Test("the leader's fired timers are in flight until applied; an event lost with a truncated suffix is re-armed")
    func consensusTimersRearmLostEvents() {
        var timers = ConsensusTimers()
        timers.schedule(correlationId: 1, deadline: ClusterTime(rawValue: 100), sequence: 1)
        timers.schedule(correlationId: 2, deadline: ClusterTime(rawValue: 100), sequence: 2)
        var batch: [Int64] = []
        var count = timers.fireDue(now: ClusterTime(rawValue: 100), limit: 10) { batch.append($0.correlationId); return true }
        #expect(count == 2)
        #expect(batch == [1, 2])
        timers.batchAppended(endingAt: LogPosition(4096))
        #expect(timers.pendingCount == 0 && timers.inFlightCount == 2)
        count = timers.fireDue(now: ClusterTime(rawValue: 1_000), limit: 10) { _ in true }
        #expect(count == 0, "in flight: not fired again")
        // Timer 1's event is applied and fires; timer 2's was truncated away before the service got there.
        timers.fired(correlationId: 1, sequence: 1)
        timers.serviceApplied(upTo: LogPosition(4096))
        #expect(timers.inFlightCount == 0)
        #expect(timers.pending.earliest?.correlationId == 2, "re-armed")
        // A dropped batch leaves its timers pending.
        count = timers.fireDue(now: ClusterTime(rawValue: 1_000), limit: 10) { _ in true }
        #expect(count == 1)
        timers.batchDropped()
        #expect(timers.pending.timer(correlationId: 2)?.sequence == 2)
    }

    @Test("a new leader does not fire what the old leader's unapplied events already fire, even before the service reports the schedule")
    func consensusTimersNewLeaderScan() {
        var timers = ConsensusTimers()
        timers.schedule(correlationId: 1, deadline: ClusterTime(rawValue: 10), sequence: 1)
        timers.schedule(correlationId: 2, deadline: ClusterTime(rawValue: 10), sequence: 2)
        timers.schedule(correlationId: 3, deadline: ClusterTime(rawValue: 10), sequence: 3)
        // The log holds events for 1 (current), 3 as an older scheduling (stale), and 4 (scheduled by
        // an entry the service has not applied yet).
        timers.schedule(correlationId: 3, deadline: ClusterTime(rawValue: 10), sequence: 5)
        let events: [(timer: PendingTimer, end: LogPosition)] = [
            (PendingTimer(correlationId: 1, deadline: ClusterTime(rawValue: 10), sequence: 1), LogPosition(512)),
            (PendingTimer(correlationId: 3, deadline: ClusterTime(rawValue: 10), sequence: 3), LogPosition(544)),
            (PendingTimer(correlationId: 4, deadline: ClusterTime(rawValue: 10), sequence: 6), LogPosition(576)),
        ]
        timers.becameLeader(unappliedEvents: events)
        var fired: [Int64] = []
        _ = timers.fireDue(now: ClusterTime(rawValue: 100), limit: 10) { fired.append($0.correlationId); return true }
        #expect(fired == [2, 3], "1 and 4 are already in the log; 3's event there is for its old scheduling")
        timers.batchAppended(endingAt: LogPosition(1024))
        timers.schedule(correlationId: 4, deadline: ClusterTime(rawValue: 10), sequence: 6)
        #expect(timers.pendingCount == 0, "4's event is in the log")
        timers.fired(correlationId: 1, sequence: 1)
        timers.fired(correlationId: 4, sequence: 6)
        timers.serviceApplied(upTo: LogPosition(1024))
        #expect(timers.pendingCount == 2 && timers.inFlightCount == 0, "2 and 3 were not applied as fired: re-armed")
    }
}
