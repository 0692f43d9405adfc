import Glibc
import KeelCore
import Synchronization
import Testing

@testable import KeelIO

/// `Ring.queueWake`: one ring wakes another through IORING_OP_MSG_RING, sent with its own submit.
@Suite struct RingWakeMessageTests {
    @Test func aWakeMessageFromAnotherThreadsRingEndsAKernelWait() throws {
        let target = try Ring(configuration: .init(setupMode: .deferTaskRun))
        let doorbell = target.doorbell
        try target.wait(timeoutNanos: 1_000_000)  // enables the ring on this thread
        let sent = SentFlag()
        let sender = try KeelThread.spawn(name: "test-sender") {
            guard let ring = try? Ring(configuration: .init(setupMode: .deferTaskRun)) else { return }
            var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
            nanosleep(&pause, nil)
            do {
                try ring.queueWake(doorbell)
                try ring.submit()
                sent.value.store(true, ordering: .releasing)
                // Stay until the message is out (a failure would complete here).
                try ring.wait(timeoutNanos: 100_000_000)
            } catch {}
        }
        let start = nowNanos()
        try target.wait(timeoutNanos: 20_000_000_000)
        let elapsed = nowNanos() - start
        sender.join()
        let wasSent = sent.value.load(ordering: .acquiring)
        #expect(wasSent)
        #expect(elapsed < 10_000_000_000, "the wait should end on the message, not the 20 s timeout")
        #expect(target.wakeUpCount == 1)
    }

    @Test func aWakeMessageToARingNotEnabledYetArrivesThroughItsEventfd() throws {
        // A deferTaskRun ring is created disabled; messages to it fail until its thread first uses it.
        let target = try Ring(configuration: .init(setupMode: .deferTaskRun))
        let sender = try Ring(configuration: .init(setupMode: .deferTaskRun))
        try sender.queueWake(target.doorbell)
        try sender.wait(timeoutNanos: 1_000_000_000)  // submits; the failure completes here and writes the eventfd
        let start = nowNanos()
        try target.wait(timeoutNanos: 20_000_000_000)
        #expect(nowNanos() - start < 10_000_000_000, "the fallback wake-up was lost")
        #expect(target.wakeUpCount == 1)
    }
}

private final class SentFlag: Sendable {
    let value = Atomic<Bool>(false)
}
