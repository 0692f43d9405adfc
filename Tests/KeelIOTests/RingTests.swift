import Glibc
import KeelCore
import Synchronization
import Testing
@testable import KeelIO

@Suite struct RingUserDataTests {
    @Test func packsOwnerOperationAndTokenAndUnpacksThem() {
        let packed = RingUserData(ownerTag: 7, operation: .datasync, token: IOToken(0xABCD_1234_5678))
        #expect(packed.ownerTag == 7)
        #expect(packed.operation == .datasync)
        #expect(packed.token == IOToken(0xABCD_1234_5678))
        #expect(packed.rawValue >> 56 == 7)
    }

    @Test func neverCollidesWithLiburingsTimeoutMarker() {
        let largest = RingUserData(ownerTag: 254, operation: .probe, token: IOToken(RingUserData.tokenMask))
        #expect(largest != RingUserData.liburingTimeout)
    }
}

@Suite struct RingTests {
    /// A storage on its own ring in a fresh directory, with one open file.
    struct Fixture {
        let directory = TemporaryDirectory()
        let ring: Ring
        let storage: IOUringStorage
        let file: FileID

        init(mode: Ring.SetupMode = .automatic, submissionQueueEntries: UInt32 = 64, completionCapacity: Int = 4096) throws {
            ring = try Ring(configuration: .init(submissionQueueEntries: submissionQueueEntries, setupMode: mode))
            storage = try IOUringStorage(directory: directory.path, ring: ring, completionCapacity: completionCapacity)
            file = try storage.openFile("data", create: true)
        }
    }

    @Test func automaticModePicksTheBestModeThisKernelAccepts() throws {
        let ring = try Ring()
        #expect(ring.setupMode == .deferTaskRun, "kernel 6.18 supports SINGLE_ISSUER | DEFER_TASKRUN")
        #expect(ring.submissionQueueEntries == 256)
    }

    @Test func linkedWriteThenDatasyncCompletesWriteFirstAndDataIsReadable() throws {
        let fixture = try Fixture()
        let payload = [UInt8]((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31) })
        try payload.withUnsafeBytes { bytes in
            try fixture.storage.submitWrite(fixture.file, at: 8192, bytes, token: IOToken(42), thenDatasync: true)
            let completions = try collectCompletions(from: fixture.storage, count: 2)
            #expect(completions.map(\.operation) == [.write, .datasync])
            #expect(completions.map(\.token) == [IOToken(42), IOToken(42)])
            #expect(completions.map(\.result) == [4096, 0])
        }
        #expect(try fixture.storage.read(fixture.file, at: 8192, count: 4096) == payload)
        #expect(fixture.ring.operationsInFlight == 0)
    }

    @Test(arguments: [Ring.SetupMode.deferTaskRun, .cooperativeTaskRun, .basic])
    func completionsArriveByReapingAloneInEveryMode(mode: Ring.SetupMode) throws {
        let fixture = try Fixture(mode: mode)
        #expect(fixture.ring.setupMode == mode)
        let payload: [UInt8] = Array(repeating: 0x5A, count: 512)
        var completions = IOCompletionBuffer(capacity: 4)
        try payload.withUnsafeBytes { bytes in
            try fixture.storage.submitWrite(fixture.file, at: 0, bytes, token: IOToken(1), thenDatasync: false)
            try fixture.storage.flushSubmissions()
            // No kernel wait: the completion must show up through reaping (peeking) alone.
            let start = nowNanos()
            while completions.isEmpty && nowNanos() - start < 5_000_000_000 {
                fixture.storage.reapCompletions(into: &completions)
            }
        }
        #expect(completions.count == 1)
        #expect(completions.isEmpty == false && completions[0].result == 512)
    }

    @Test func writeToAnInvalidDescriptorCompletesWithEBADFNamingWrite() throws {
        let fixture = try Fixture()
        let descriptor = try fixture.storage.openFile("closed", create: true)
        fixture.storage.closeFile(descriptor)
        let payload: [UInt8] = [1, 2, 3]
        try payload.withUnsafeBytes { bytes in
            try fixture.storage.submitWrite(descriptor, at: 0, bytes, token: IOToken(9), thenDatasync: false)
            let completions = try collectCompletions(from: fixture.storage, count: 1)
            #expect(completions.count == 1)
            let error = try #require(completions.first?.error)
            #expect(error == IOError(.write, errno: EBADF))
            #expect(error.description.contains("write failed"))
            #expect(error.description.contains("EBADF"))
        }
    }

    @Test func datasyncOfAnInvalidDescriptorCompletesWithEBADF() throws {
        let fixture = try Fixture()
        try fixture.storage.submitDatasync(FileID(rawValue: 1_000_000), token: IOToken(3))
        let completions = try collectCompletions(from: fixture.storage, count: 1)
        #expect(completions.first?.error == IOError(.datasync, errno: EBADF))
        #expect(completions.first?.token == IOToken(3))
    }

    @Test func aFailedWriteCancelsItsLinkedDatasync() throws {
        let fixture = try Fixture()
        let payload: [UInt8] = [1, 2, 3]
        try payload.withUnsafeBytes { bytes in
            try fixture.storage.submitWrite(FileID(rawValue: 1_000_000), at: 0, bytes, token: IOToken(5), thenDatasync: true)
            let completions = try collectCompletions(from: fixture.storage, count: 2)
            #expect(completions.map(\.operation) == [.write, .datasync])
            #expect(completions.map(\.error) == [IOError(.write, errno: EBADF), IOError(.datasync, errno: ECANCELED)])
        }
    }

    @Test func aThousandWritesQueuedBeyondTheSubmissionQueueAllComplete() throws {
        let fixture = try Fixture(submissionQueueEntries: 32)
        let writeCount = 1000
        let recordBytes = 64
        // One buffer for all writes: it must stay valid until every completion is reaped.
        var source = [UInt8](repeating: 0, count: writeCount * recordBytes)
        for index in 0..<writeCount {
            for byte in 0..<recordBytes { source[index * recordBytes + byte] = UInt8(truncatingIfNeeded: index &+ byte) }
        }
        var seen = [Bool](repeating: false, count: writeCount)
        try source.withUnsafeBytes { all in
            for index in 0..<writeCount {
                let record = UnsafeRawBufferPointer(rebasing: all[(index * recordBytes)..<((index + 1) * recordBytes)])
                try fixture.storage.submitWrite(
                    fixture.file, at: Int64(index * recordBytes), record, token: IOToken(UInt64(index)), thenDatasync: false)
            }
            #expect(fixture.ring.operationsInFlight == writeCount)
            let completions = try collectCompletions(from: fixture.storage, count: writeCount)
            #expect(completions.count == writeCount)
            for completion in completions {
                #expect(completion.operation == .write)
                #expect(completion.result == Int32(recordBytes))
                let index = Int(completion.token.rawValue)
                #expect(!seen[index], "token \(index) completed twice")
                seen[index] = true
            }
        }
        #expect(seen.allSatisfy { $0 })
        #expect(try fixture.storage.read(fixture.file, at: 0, count: source.count) == source)
        #expect(fixture.ring.operationsInFlight == 0)
    }

    @Test func waitWithNothingPendingReturnsAfterTheTimeout() throws {
        let ring = try Ring()
        let timeoutNanos: Int64 = 50_000_000
        let start = nowNanos()
        try ring.wait(timeoutNanos: timeoutNanos)
        let elapsed = nowNanos() - start
        #expect(elapsed >= timeoutNanos * 8 / 10, "returned after \(elapsed) ns")
        #expect(ring.wakeUpCount == 0)
    }

    @Test func aWakeFromAnotherThreadEndsAKernelWait() throws {
        let ring = try Ring()
        let waker = ring.waker
        let thread = try KeelThread.spawn(name: "test-waker") {
            var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
            nanosleep(&pause, nil)
            waker.wake()
        }
        let start = nowNanos()
        try ring.wait(timeoutNanos: 20_000_000_000)
        let elapsed = nowNanos() - start
        thread.join()
        #expect(elapsed < 10_000_000_000, "the wait should end on the wake-up, not the 20 s timeout")
        #expect(ring.wakeUpCount == 1)
    }

    @Test func aWakeSentBeforeTheWaitIsNotLost() throws {
        let ring = try Ring()
        try ring.wait(timeoutNanos: 1_000_000)  // posts the eventfd read
        ring.waker.wake()
        let start = nowNanos()
        try ring.wait(timeoutNanos: 20_000_000_000)
        #expect(nowNanos() - start < 10_000_000_000)
        #expect(ring.wakeUpCount == 1)
    }

    @Test func completionsAreSortedIntoTheirOwnersQueues() throws {
        let fixture = try Fixture()
        let other = fixture.ring.registerOwner(completionCapacity: 8)
        try fixture.ring.queueNoOperation(owner: other, operation: .send, token: IOToken(77))
        try fixture.storage.submitDatasync(fixture.file, token: IOToken(78))
        let storageCompletions = try collectCompletions(from: fixture.storage, count: 1)
        #expect(storageCompletions.map(\.token) == [IOToken(78)])
        fixture.ring.reap()
        let otherCompletion = fixture.ring.nextCompletion(for: other)
        #expect(otherCompletion?.token == IOToken(77))
        #expect(otherCompletion?.operation == .send)
        #expect(fixture.ring.nextCompletion(for: other) == nil)
    }

    @Test func aFullOwnerQueueHoldsLaterCompletionsBackUntilTaken() throws {
        let ring = try Ring()
        let owner = ring.registerOwner(completionCapacity: 2)
        for index in 0..<5 { try ring.queueNoOperation(owner: owner, operation: .write, token: IOToken(UInt64(index))) }
        try ring.submit()
        var taken: [UInt64] = []
        let start = nowNanos()
        while taken.count < 5 && nowNanos() - start < 5_000_000_000 {
            try ring.wait(timeoutNanos: 10_000_000)
            #expect(ring.pendingCompletionCount(for: owner) <= 2)
            while let completion = ring.nextCompletion(for: owner) { taken.append(completion.token.rawValue) }
        }
        #expect(taken == [0, 1, 2, 3, 4])
    }

    @Test func sendAndReceiveOnASocketPairGoThroughTheRing() throws {
        let ring = try Ring()
        let owner = ring.registerOwner(completionCapacity: 8)
        var pair: [Int32] = [-1, -1]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &pair) == 0)
        defer { close(pair[0]); close(pair[1]) }
        let message: [UInt8] = Array("hello, ring".utf8)
        var received = [UInt8](repeating: 0, count: 64)
        var results: [IOOperation: Int32] = [:]
        try message.withUnsafeBytes { bytes in
            try received.withUnsafeMutableBytes { buffer in
                try ring.queueReceive(owner: owner, descriptor: pair[1], into: buffer, token: IOToken(2))
                try ring.queueSend(owner: owner, descriptor: pair[0], bytes, token: IOToken(1))
                let start = nowNanos()
                while results.count < 2 && nowNanos() - start < 5_000_000_000 {
                    try ring.wait(timeoutNanos: 100_000_000)
                    while let completion = ring.nextCompletion(for: owner) { results[completion.operation] = completion.result }
                }
            }
        }
        #expect(results[.send] == Int32(message.count))
        #expect(results[.receive] == Int32(message.count))
        #expect(Array(received.prefix(message.count)) == message)
    }
}

@Suite struct RingThreadBindingTests {
    @Test func aDeferTaskRunRingUsedFromASecondThreadStopsWithAPrecondition() async {
        await #expect(processExitsWith: .failure) {
            let ring = try Ring(configuration: .init(setupMode: .deferTaskRun))
            try ring.submit()  // binds the ring to this thread
            let intruder = try KeelThread.spawn(name: "intruder") { ring.reap() }
            intruder.join()
        }
    }

    @Test func aDeferTaskRunRingBuiltOnOneThreadCanBeUsedOnAnother() throws {
        let ring = try Ring(configuration: .init(setupMode: .deferTaskRun))
        let outcome = Mutex<Int32?>(nil)
        let worker = try KeelThread.spawn(name: "ring-user") {
            do {
                let owner = ring.registerOwner(completionCapacity: 1)
                try ring.queueNoOperation(owner: owner, operation: .write, token: IOToken(1))
                try ring.wait(timeoutNanos: 5_000_000_000)
                let result = ring.nextCompletion(for: owner)?.result
                outcome.withLock { $0 = result }
            } catch {
                outcome.withLock { $0 = -1 }
            }
        }
        worker.join()
        #expect(outcome.withLock { $0 } == 0)
    }
}
