import CKeelShims
import Glibc
import KeelCore

/// Ends a kernel wait on a `Ring` from any thread (DESIGN.md decision 8: an eventfd between agents).
///
/// The ring keeps a read of the eventfd posted; `wake()` adds to the eventfd's counter, which
/// completes that read and so ends `Ring.wait(timeoutNanos:)`. A wake-up sent while the ring is not
/// waiting is not lost: the counter stays set and the next wait returns at once.
public final class Waker: Sendable {
    /// The eventfd; owned by this object and closed when the last reference goes.
    let descriptor: Int32

    /// Creates an eventfd-backed waker.
    public init() throws(IOError) {
        let result = keel_eventfd_create()
        guard result >= 0 else { throw IOError(.wake, errno: -result, subject: "eventfd") }
        descriptor = result
    }

    deinit { closeDescriptor(descriptor) }

    /// Wakes the ring this waker belongs to. Thread-safe; never blocks (the counter cannot
    /// realistically reach its maximum).
    public func wake() {
        var one: UInt64 = 1
        while true {
            let written = withUnsafeBytes(of: &one) { Glibc.write(descriptor, $0.baseAddress, 8) }
            if written >= 0 || errno != EINTR { return }
        }
    }
}
