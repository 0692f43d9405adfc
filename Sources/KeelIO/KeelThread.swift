import CKeelShims
import Glibc
import KeelCore

/// A named POSIX thread running one closure. The closure is `sending`: whatever it captures (an
/// agent, its storage and ring) moves to the new thread and is no longer reachable from the caller,
/// so non-Sendable agents can run on their own thread without locks.
struct KeelThread {
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
}
