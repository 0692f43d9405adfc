import KeelCore
import Synchronization

/// What the service agent tells the consensus agent about replicated state it computed while
/// applying entries (timers, service-requested session closes) and how far it got.
public enum ServiceRequest: Equatable, Sendable {
    /// A timer was scheduled (or rescheduled) at the entry being applied.
    case scheduleTimer(correlationId: Int64, deadline: ClusterTime, sequence: Int64)
    /// A timer was cancelled.
    case cancelTimer(correlationId: Int64)
    /// A timer-event entry was applied and fired the timer scheduled as `sequence`.
    case timerFired(correlationId: Int64, sequence: Int64)
    /// The service asked to close a session (`Cluster.closeSession`).
    case closeSession(sessionId: Int64)
    /// A session-close entry was applied.
    case sessionClosed(sessionId: Int64)
    /// Every entry below `position` has been applied, and every request it made precedes this one.
    case applied(upTo: LogPosition)
}

/// The bounded single-producer single-consumer queue carrying `ServiceRequest`s from the service
/// agent (producer) to the consensus agent (consumer), in the order the service made them
/// (DESIGN.md decision 8). Fixed 32-byte records in a ring allocated once:
///
/// ```
/// record: | kind i64 | a i64 | b i64 | c i64 |
/// ```
public final class ServiceRequestQueue: @unchecked Sendable {
    // Safe because: records between head and tail belong to the consumer, the rest to the producer;
    // each side writes only its own index, publishing it with release after touching the records.
    private let records: UnsafeMutablePointer<(Int64, Int64, Int64, Int64)>
    /// Records the ring holds (a power of two).
    public let capacity: Int
    private let head = Atomic<Int>(0)
    private let tail = Atomic<Int>(0)

    /// A queue of `capacity` records (rounded up to a power of two).
    public init(capacity: Int = 1 << 16) {
        var rounded = 64
        while rounded < capacity { rounded <<= 1 }
        self.capacity = rounded
        records = .allocate(capacity: rounded)
    }

    deinit { records.deallocate() }

    /// Producer: appends `request`; false when the queue is full.
    public func offer(_ request: ServiceRequest) -> Bool {
        let position = tail.load(ordering: .relaxed)
        guard position - head.load(ordering: .acquiring) < capacity else { return false }
        records[position & (capacity - 1)] = Self.encode(request)
        tail.store(position + 1, ordering: .releasing)
        return true
    }

    /// Consumer: removes and returns the oldest request, or nil when empty.
    public func poll() -> ServiceRequest? {
        let position = head.load(ordering: .relaxed)
        guard position < tail.load(ordering: .acquiring) else { return nil }
        let record = records[position & (capacity - 1)]
        head.store(position + 1, ordering: .releasing)
        return Self.decode(record)
    }

    /// True when nothing is queued.
    public var isEmpty: Bool { head.load(ordering: .acquiring) == tail.load(ordering: .acquiring) }

    private static func encode(_ request: ServiceRequest) -> (Int64, Int64, Int64, Int64) {
        switch request {
        case .scheduleTimer(let id, let deadline, let sequence): (1, id, deadline.rawValue, sequence)
        case .cancelTimer(let id): (2, id, 0, 0)
        case .timerFired(let id, let sequence): (3, id, sequence, 0)
        case .closeSession(let id): (4, id, 0, 0)
        case .sessionClosed(let id): (5, id, 0, 0)
        case .applied(let position): (6, position.rawValue, 0, 0)
        }
    }

    private static func decode(_ record: (Int64, Int64, Int64, Int64)) -> ServiceRequest {
        switch record.0 {
        case 1: .scheduleTimer(correlationId: record.1, deadline: ClusterTime(rawValue: record.2), sequence: record.3)
        case 2: .cancelTimer(correlationId: record.1)
        case 3: .timerFired(correlationId: record.1, sequence: record.2)
        case 4: .closeSession(sessionId: record.1)
        case 5: .sessionClosed(sessionId: record.1)
        case 6: .applied(upTo: LogPosition(record.1))
        default: preconditionFailure("service request kind \(record.0) was never written")
        }
    }
}
