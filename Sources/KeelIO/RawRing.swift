import CLiburing
import Glibc
import KeelCore

/// The liburing `struct io_uring` and the memory the kernel shares with it. Non-copyable: exactly
/// one owner exits the ring, once. The struct lives at a fixed heap address because liburing keeps
/// pointers into it while the ring is in use.
struct RawRing: ~Copyable {
    let pointer: UnsafeMutablePointer<io_uring>
    /// The IORING_SETUP_* flags the ring was created with.
    let setupFlags: UInt32
    /// The IORING_FEAT_* flags the kernel reported.
    let features: UInt32
    /// Where the ring's own eventfd read lands. Owned here so that it is freed only after the ring
    /// is torn down (which cancels the read).
    let wakeReadBuffer: UnsafeMutablePointer<UInt64>

    /// Creates a ring; throws the errno of io_uring_setup (negated by liburing) on failure.
    init(submissionEntries: UInt32, completionEntries: UInt32, setupFlags: UInt32) throws(IOError) {
        precondition(submissionEntries > 0, "a ring needs at least one submission entry")
        precondition(completionEntries >= submissionEntries, "the completion queue must be at least as large as the submission queue")
        var parameters = io_uring_params()
        parameters.flags = setupFlags | IORING_SETUP_CQSIZE
        parameters.cq_entries = completionEntries
        let ring = UnsafeMutablePointer<io_uring>.allocate(capacity: 1)
        ring.initialize(to: io_uring())
        let result = io_uring_queue_init_params(submissionEntries, ring, &parameters)
        guard result == 0 else {
            ring.deallocate()
            throw IOError(.probe, errno: -result, subject: "io_uring_setup")
        }
        pointer = ring
        self.setupFlags = setupFlags
        features = parameters.features
        wakeReadBuffer = .allocate(capacity: 1)
        wakeReadBuffer.initialize(to: 0)
    }

    deinit {
        io_uring_queue_exit(pointer)
        pointer.deallocate()
        wakeReadBuffer.deallocate()
    }

    /// The ring's file descriptor (for messages).
    var descriptor: Int32 { pointer.pointee.ring_fd }
}
