import Synchronization

/// Set by SIGINT/SIGTERM; the demo's loops check it and clean up.
let demoInterrupted = Atomic<Bool>(false)

/// A demo failure, printed as one line.
struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
