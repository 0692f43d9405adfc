import CKeelShims
import Glibc
import KeelCore

/// A named POSIX thread running one closure. The closure is `sending`: whatever it captures (an
/// agent, its storage and ring) moves to the new thread and is no longer reachable from the caller,
/// so non-Sendable agents can run on their own thread without locks.
struct KeelThread: Sendable {
    private let handle: pthread_t

    /// Carries the closure through pthread_create's untyped argument.
    /// Safe because: the closure arrives `sending` (no other reference to its captures remains)
    /// and is run exactly once, on the new thread only.
    private final class Start: @unchecked Sendable {
        let name: String
        let body: () -> Void
        init(name: String, body: @escaping () -> Void) {
            self.name = name
            self.body = body
        }
    }

    /// Starts a thread named `name` (15 characters are kept) that runs `body`.
    static func spawn(name: String, _ body: sending @escaping () -> Void) throws(IOError) -> KeelThread {
        let start = Unmanaged.passRetained(Start(name: name, body: body))
        var handle = pthread_t()
        let result = pthread_create(&handle, nil, { argument in
            let start = Unmanaged<Start>.fromOpaque(argument!).takeRetainedValue()
            _ = keel_set_thread_name(start.name)
            start.body()
            return nil
        }, start.toOpaque())
        guard result == 0 else {
            start.release()
            throw IOError(.open, errno: result, subject: "thread \(name) (pthread_create)")
        }
        return KeelThread(handle: handle)
    }

    /// Waits for the thread to end. Call exactly once.
    func join() {
        let result = pthread_join(handle, nil)
        precondition(result == 0, "pthread_join failed: errno \(result)")
    }

    /// The kernel's id of the calling thread.
    static var currentID: Int32 { keel_thread_id() }

    /// The calling thread's name as the kernel reports it (/proc/thread-self/comm), or "" if unreadable.
    static var currentName: String {
        let descriptor = open("/proc/thread-self/comm", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return "" }
        defer { closeDescriptor(descriptor) }
        var buffer = (UInt64(0), UInt64(0), UInt64(0))
        let count = withUnsafeMutableBytes(of: &buffer) { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return "" }
        return withUnsafeBytes(of: &buffer) { String(decoding: $0.prefix(count), as: UTF8.self) }
            .trimmingSuffix("\n")
    }
}

extension String {
    fileprivate func trimmingSuffix(_ suffix: String) -> String {
        hasSuffix(suffix) ? String(dropLast(suffix.count)) : self
    }
}
