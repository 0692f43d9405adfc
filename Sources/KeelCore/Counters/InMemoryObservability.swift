/// A counters region in plain process memory, for the simulator and tests (the node maps
/// `counters.dat` through KeelIO's `CountersFile` instead). Same layout, same writer and reader.
public final class InMemoryCounters {
    private let memory: UnsafeMutableRawBufferPointer
    /// Allocates counters in the region.
    public let writer: CountersWriter
    /// Reads the region.
    public let reader: CountersReader

    /// A zeroed region with room for `capacity` counters, stamped with `pid` (the simulator passes
    /// a member id) and `startEpochNanos`.
    public init(capacity: Int, pid: Int32 = 0, startEpochNanos: Int64 = 0) {
        memory = .allocate(byteCount: CountersLayout.requiredBytes(capacity: capacity), alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        writer = CountersWriter(memory: memory, pid: pid, startEpochNanos: startEpochNanos)
        // Safe to force: the region was formatted just above.
        reader = try! CountersReader(memory: UnsafeRawBufferPointer(memory))
    }

    deinit { memory.deallocate() }
}

/// An error log in plain process memory, for the simulator and tests.
public final class InMemoryErrorLog: Sendable {
    // Safe because: owned by this object; only the writer (thread-safe) and reader touch it.
    private nonisolated(unsafe) let memory: UnsafeMutableRawBufferPointer
    /// Records errors (thread-safe).
    public let writer: ErrorLogWriter
    /// Reads the log.
    public let reader: ErrorLogReader

    /// A zeroed log of `bytes` bytes (header included).
    public init(bytes: Int = ErrorLogLayout.defaultFileBytes, pid: Int32 = 0, startEpochNanos: Int64 = 0) {
        memory = .allocate(byteCount: bytes, alignment: 64)
        memory.initializeMemory(as: UInt8.self, repeating: 0)
        writer = ErrorLogWriter(memory: memory, pid: pid, startEpochNanos: startEpochNanos)
        // Safe to force: the log was formatted just above.
        reader = try! ErrorLogReader(memory: UnsafeRawBufferPointer(memory))
    }

    deinit { memory.deallocate() }
}
