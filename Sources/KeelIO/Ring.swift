import CLiburing
import Glibc
import KeelCore

/// One io_uring, shared by every I/O owner on one thread (DESIGN.md decision 2): the storage now,
/// the transport later.
///
/// - Operations are queued with a `RingOwner`, an `IOOperation` and an `IOToken`, packed into the
///   submission's `user_data` (see `RingUserData`): nothing is allocated per operation.
/// - Queued operations go to the kernel in one `submit()` per duty cycle; when the submission queue
///   fills up, the ring submits what it holds and carries on.
/// - `reap()` moves arrived completions into per-owner queues without a system call (unless the
///   kernel flags pending completion work); owners then take theirs with `nextCompletion(for:)`.
///   Completions are collected first and handled afterwards, never from inside the reaping loop.
/// - `wait(timeoutNanos:)` submits and sleeps in the kernel until a completion, a `Waker.wake()`
///   from another thread, or the timeout.
///
/// Not thread-safe. In `deferTaskRun` mode (the default when the kernel supports it) the ring
/// belongs to the first thread that submits, reaps or waits, and using it from any other thread
/// is a programming error caught by a precondition.
public final class Ring {
    private let raw: RawRing
    /// The mode the kernel accepted.
    public let setupMode: SetupMode
    /// Wakes this ring's `wait` from another thread.
    public let waker: Waker
    /// Submission queue entries the kernel granted.
    public let submissionQueueEntries: UInt32

    private var owners: [RingCompletionQueue] = []
    private let cqeBatch: UnsafeMutablePointer<UnsafeMutablePointer<io_uring_cqe>?>
    private static let cqeBatchCapacity: UInt32 = 64
    private var wakeReadPosted = false
    /// The eventfd wakers of rings this ring sent wake messages to: a message that fails (the target
    /// ring not enabled yet, or gone) is delivered through the target's eventfd instead.
    private var messageFallbacks: [Waker] = []
    private var isEnabled: Bool
    private var issuerThread: pthread_t?

    /// Operations queued or in the kernel whose (final) completion has not been reaped yet.
    public private(set) var operationsInFlight = 0
    /// Completions reaped into owner queues and not yet taken by their owners.
    public private(set) var completionsAwaitingOwners = 0
    /// How many wake-ups (`Waker.wake()` calls, coalesced) the ring has received.
    public private(set) var wakeUpCount = 0
    /// Completions that arrived for an owner that had unregistered, and were dropped.
    public private(set) var droppedCompletionCount = 0

    /// Creates a ring, falling back to simpler setup modes when the kernel refuses a flag.
    /// Throws `IOError(.probe, …)` naming io_uring_setup's errno (see `IOUringProbe` for a diagnosis).
    public init(configuration: Configuration = Configuration()) throws(IOError) {
        var mode = SetupMode.basic
        raw = try Self.createRawRing(configuration, chosenMode: &mode)
        setupMode = mode
        isEnabled = mode.setupFlags & IORING_SETUP_R_DISABLED == 0
        submissionQueueEntries = raw.pointer.pointee.sq.ring_entries
        waker = try Waker()
        cqeBatch = .allocate(capacity: Int(Self.cqeBatchCapacity))
    }

    /// Tries the configuration's candidate modes, best first; `chosenMode` receives the one that worked.
    private static func createRawRing(_ configuration: Configuration, chosenMode: inout SetupMode) throws(IOError) -> RawRing {
        var lastError = IOError(.probe, errno: Errno.invalid, subject: "io_uring_setup")
        for mode in configuration.setupMode.candidates {
            do {
                let ring = try RawRing(
                    submissionEntries: configuration.submissionQueueEntries,
                    completionEntries: configuration.completionQueueEntries,
                    setupFlags: mode.setupFlags)
                chosenMode = mode
                return ring
            } catch {
                lastError = error
                // EINVAL means "this kernel does not know a flag": try a simpler mode. Anything else
                // (EPERM, ENOSYS, ENOMEM) would fail the same way in every mode.
                if error.errno != Errno.invalid { throw error }
            }
        }
        throw lastError
    }

    deinit {
        cqeBatch.deallocate()
        // `raw` is torn down after this body; it frees the eventfd read's buffer after the ring.
    }

    // MARK: Owners

    /// Registers an owner whose completions the ring keeps, up to `completionCapacity` at a time,
    /// until the owner takes them. Size it for the owner's maximum operations in flight: when an
    /// owner's queue is full, reaping stops at its next completion until the owner takes some.
    public func registerOwner(completionCapacity: Int) -> RingOwner {
        precondition(owners.count < Int(RingUserData.reservedTag) - 1, "a ring supports at most 254 owners")
        owners.append(RingCompletionQueue(capacity: completionCapacity))
        return RingOwner(tag: UInt8(owners.count))
    }

    /// Forgets an owner: completions queued for it, and any that arrive later, are dropped.
    public func unregisterOwner(_ owner: RingOwner) {
        let queue = ownerQueue(owner)
        while queue.removeFirst() != nil { completionsAwaitingOwners -= 1 }
        queue.isRegistered = false
    }

    /// Takes the oldest reaped completion of `owner`, or nil when it has none.
    @inline(__always)
    public func nextCompletion(for owner: RingOwner) -> RingCompletion? {
        guard let completion = ownerQueue(owner).removeFirst() else { return nil }
        completionsAwaitingOwners -= 1
        return completion
    }

    /// How many reaped completions `owner` has not taken yet.
    public func pendingCompletionCount(for owner: RingOwner) -> Int { ownerQueue(owner).count }

    @inline(__always)
    private func ownerQueue(_ owner: RingOwner) -> RingCompletionQueue {
        let index = Int(owner.tag) - 1
        precondition(index >= 0 && index < owners.count, "unknown ring owner")
        return owners[index]
    }

    // MARK: Submission

    /// A free submission queue entry, submitting what the queue holds first when it is full.
    @inline(__always)
    func nextSubmissionEntry() throws(IOError) -> UnsafeMutablePointer<io_uring_sqe> {
        if let entry = io_uring_get_sqe(raw.pointer) { return entry }
        try submitUntilSpace(1)
        guard let entry = io_uring_get_sqe(raw.pointer) else {
            preconditionFailure("io_uring submission queue still full after submitting")
        }
        return entry
    }

    /// Makes sure `count` entries can be queued without a submission in between, so that a linked
    /// chain never straddles two submissions (the kernel would end the chain at the boundary).
    public func reserveSubmissions(_ count: Int) throws(IOError) {
        precondition(count <= Int(submissionQueueEntries), "a chain cannot be longer than the submission queue")
        if Int(io_uring_sq_space_left(raw.pointer)) < count { try submitUntilSpace(count) }
    }

    private func submitUntilSpace(_ count: Int) throws(IOError) {
        var idleRounds = 0
        while Int(io_uring_sq_space_left(raw.pointer)) < count {
            if try submit() > 0 { continue }
            // The kernel took nothing: make completion room and retry a bounded number of times.
            reap()
            idleRounds += 1
            if idleRounds > 64 {
                throw enterError(EAGAIN, what: "io_uring_enter (submit) made no progress", operation: oldestUnconsumedOperation() ?? .write)
            }
        }
    }

    /// Hands every queued operation to the kernel without waiting. Returns how many were taken.
    /// No system call when nothing is queued.
    @discardableResult
    public func submit() throws(IOError) -> Int {
        try claimForCurrentThread()
        var busyRetries = 0
        while true {
            let result = io_uring_submit(raw.pointer)
            if result >= 0 { return Int(result) }
            if result == -EINTR { continue }
            if (result == -EAGAIN || result == -EBUSY) && busyRetries < 16 {
                // The kernel is short of completion space or request memory: make room and retry.
                busyRetries += 1
                reap()
                continue
            }
            throw enterError(-result, what: "io_uring_enter (submit)", operation: oldestUnconsumedOperation() ?? .write)
        }
    }

    /// Stamps an entry with its identity and link flag; counts it in flight.
    @inline(__always)
    func finishEntry(_ entry: UnsafeMutablePointer<io_uring_sqe>, owner: RingOwner, operation: IOOperation, token: IOToken, linkNext: Bool) {
        io_uring_sqe_set_data64(entry, RingUserData(ownerTag: owner.tag, operation: operation, token: token).rawValue)
        if linkNext { io_uring_sqe_set_flags(entry, Self.linkFlag) }
        operationsInFlight += 1
    }

    /// IOSQE_IO_LINK, built from its bit number (the flag macro itself is not imported).
    static let linkFlag = UInt32(1) << UInt32(IOSQE_IO_LINK_BIT)

    // MARK: Completion

    /// Moves every arrived completion into its owner's queue, without blocking and without a system
    /// call unless the kernel asks for one (pending completion work or an overflowed queue).
    /// Stops early at a completion whose owner's queue is full. Returns how many were moved.
    @discardableResult
    public func reap() -> Int {
        guard isEnabled else { return 0 }
        checkIssuerThread()
        var moved = 0
        while true {
            let available = io_uring_peek_batch_cqe(raw.pointer, cqeBatch, Self.cqeBatchCapacity)
            if available == 0 { break }
            var consumed: UInt32 = 0
            while consumed < available, let entry = cqeBatch[Int(consumed)] {
                if !route(entry.pointee) { break }
                consumed += 1
            }
            io_uring_cq_advance(raw.pointer, consumed)
            moved += Int(consumed)
            if consumed < available || available < Self.cqeBatchCapacity { break }
        }
        return moved
    }

    /// Files one completion; false when its owner's queue is full (it stays in the kernel's queue).
    @inline(__always)
    private func route(_ entry: io_uring_cqe) -> Bool {
        let userData = RingUserData(rawValue: entry.user_data)
        if userData == .liburingTimeout { return true }
        if userData.ownerTag == RingUserData.ringTag {
            switch userData.token.rawValue {
            case Self.wakeReadToken:
                wakeReadPosted = false
                if entry.res >= 0 { wakeUpCount += 1 }
            case Self.wakeMessageToken:
                wakeUpCount += 1
            default:
                // A wake message this ring sent failed (only failures complete here): use the eventfd.
                let index = Int(userData.token.rawValue - Self.firstFallbackToken)
                if index < messageFallbacks.count { messageFallbacks[index].wake() }
            }
            return true
        }
        let index = Int(userData.ownerTag) - 1
        precondition(index < owners.count, "completion for an owner this ring never registered")
        let queue = owners[index]
        let isFinal = entry.flags & IORING_CQE_F_MORE == 0
        guard queue.isRegistered else {
            droppedCompletionCount += 1
            if isFinal { operationsInFlight -= 1 }
            return true
        }
        if queue.isFull { return false }
        guard let operation = userData.operation else { preconditionFailure("completion with an unknown operation code") }
        queue.append(RingCompletion(token: userData.token, operation: operation, result: entry.res, flags: entry.flags))
        completionsAwaitingOwners += 1
        if isFinal { operationsInFlight -= 1 }
        return true
    }

    /// Submits queued operations, then sleeps in the kernel until a completion arrives, `Waker.wake()`
    /// is called, or `timeoutNanos` passes; then reaps. Returns at once (after submitting and reaping)
    /// when completions are already waiting or `timeoutNanos` is not positive.
    public func wait(timeoutNanos: Int64) throws(IOError) {
        try claimForCurrentThread()
        if completionsAwaitingOwners > 0 || io_uring_cq_ready(raw.pointer) > 0 || timeoutNanos <= 0 {
            try submit()
            reap()
            return
        }
        if !wakeReadPosted { try postWakeRead() }
        var timeout = __kernel_timespec(tv_sec: timeoutNanos / 1_000_000_000, tv_nsec: timeoutNanos % 1_000_000_000)
        var ready: UnsafeMutablePointer<io_uring_cqe>? = nil
        let result = io_uring_submit_and_wait_timeout(raw.pointer, &ready, 1, &timeout, nil)
        switch -result {
        case _ where result >= 0: break
        case ETIME, EINTR, EAGAIN, EBUSY: break  // timed out, interrupted, or short of space: reap what there is.
        default: throw enterError(-result, what: "io_uring_enter (wait)", operation: .timeout)
        }
        reap()
    }

    /// Keeps a read of the waker's eventfd in the ring, so that a wake-up completes it.
    private func postWakeRead() throws(IOError) {
        let entry = try nextSubmissionEntry()
        io_uring_prep_read(entry, waker.descriptor, raw.wakeReadBuffer, 8, 0)
        io_uring_sqe_set_data64(entry, RingUserData(ownerTag: RingUserData.ringTag, operation: .wake, token: IOToken(Self.wakeReadToken)).rawValue)
        wakeReadPosted = true
    }

    // MARK: Waking another ring

    private static let wakeReadToken: UInt64 = 0
    private static let wakeMessageToken: UInt64 = 1
    private static let firstFallbackToken: UInt64 = 2

    /// What another ring's thread needs to wake this ring through its own ring (`queueWake(_:)`).
    public var doorbell: RingDoorbell { RingDoorbell(descriptor: raw.descriptor, waker: waker) }

    /// Queues a wake-up of another ring (IORING_OP_MSG_RING): it goes to the kernel with this ring's
    /// next submit — no system call of its own, unlike `Waker.wake()` — and arrives on the target as a
    /// completion, which ends its `wait`, with no eventfd for the target to read and re-arm. Success
    /// leaves no completion here (CQE_SKIP_SUCCESS); a failure (the target not enabled yet) wakes the
    /// target through its eventfd instead, so a wake-up is never lost. Call on this ring's thread.
    public func queueWake(_ doorbell: RingDoorbell) throws(IOError) {
        let index: Int
        if let known = messageFallbacks.firstIndex(where: { $0 === doorbell.waker }) {
            index = known
        } else {
            messageFallbacks.append(doorbell.waker)
            index = messageFallbacks.count - 1
        }
        let entry = try nextSubmissionEntry()
        let message = RingUserData(ownerTag: RingUserData.ringTag, operation: .wake, token: IOToken(Self.wakeMessageToken))
        io_uring_prep_msg_ring(entry, doorbell.descriptor, 0, message.rawValue, 0)
        io_uring_sqe_set_data64(
            entry, RingUserData(ownerTag: RingUserData.ringTag, operation: .wake, token: IOToken(Self.firstFallbackToken + UInt64(index))).rawValue)
        io_uring_sqe_set_flags(entry, UInt32(1) << UInt32(IOSQE_CQE_SKIP_SUCCESS_BIT))
    }

    // MARK: Thread binding

    /// Enables a ring created disabled, binding it to the calling thread (SINGLE_ISSUER).
    @inline(__always)
    private func claimForCurrentThread() throws(IOError) {
        if isEnabled { checkIssuerThread(); return }
        let result = keel_io_uring_enable_rings(raw.descriptor)
        guard result == 0 else { throw IOError(.probe, errno: -result, subject: "io_uring enable rings") }
        isEnabled = true
        issuerThread = pthread_self()
    }

    @inline(__always)
    private func checkIssuerThread() {
        if let issuerThread {
            precondition(pthread_equal(issuerThread, pthread_self()) != 0,
                         "a Ring in deferTaskRun mode was used from a thread other than the one that first used it")
        }
    }

    // MARK: Errors

    private func enterError(_ code: Int32, what: String, operation: IOOperation) -> IOError {
        IOError(operation, errno: code, subject: "\(what) on ring fd \(raw.descriptor)")
    }

    /// The operation of the oldest entry the kernel has not consumed (for naming a submit failure).
    private func oldestUnconsumedOperation() -> IOOperation? {
        let queue = raw.pointer.pointee.sq
        guard let head = queue.khead?.pointee, queue.sqe_tail != head else { return nil }
        let entry = queue.sqes[Int(head & queue.ring_mask)]
        return RingUserData(rawValue: entry.user_data).operation
    }
}

/// Wakes one ring from another ring's thread (`Ring.queueWake(_:)`); carries the target's eventfd
/// waker for when a message cannot be delivered.
public struct RingDoorbell: Sendable {
    let descriptor: Int32
    /// The target ring's eventfd waker (what a failed message falls back to).
    public let waker: Waker
}
