/// The one call a node makes when something fails: the error goes into the distinct-error log and
/// its kind's counter goes up. Thread-safe (any agent may report).
public struct ErrorReporter: Sendable {
    private let log: ErrorLogWriter
    private let counters: NodeCounters

    public init(log: ErrorLogWriter, counters: NodeCounters) {
        self.log = log
        self.counters = counters
    }

    /// Records `message` of `kind` at `epochNanos` and counts it.
    @discardableResult
    public func report(_ kind: ErrorKind, _ message: String, epochNanos: Int64) -> ErrorLogWriter.Outcome {
        // Several agents may report the same kind: an atomic add, not the single-writer increment.
        counters.errors(kind: kind).incrementShared()
        return log.record(kind: kind, message: message, epochNanos: epochNanos)
    }
}
