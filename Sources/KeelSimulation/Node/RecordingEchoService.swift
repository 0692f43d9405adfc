import KeelCore
import KeelService

/// What one process incarnation of a member's service applied, in order: the end position of each
/// session message's entry and a hash of its session and payload. Shared by reference so the
/// simulation can read it while the service (a value type) lives inside its agent.
public final class ApplyRecorder {
    /// One applied session message.
    public struct Applied: Equatable, Sendable {
        /// The entry's end position in the log.
        public var position: LogPosition
        /// The client's request key (the payload's first eight bytes, little-endian).
        public var key: Int64
        /// FNV-1a over the session id and the payload.
        public var hash: UInt64
    }

    /// Every session message and timer event applied, in the order it was applied (a timer event
    /// has key −1 − its correlation id).
    public private(set) var applied: [Applied] = []
    /// What the service found wrong (a timer fired early, twice, after a cancel, …).
    public private(set) var problems: [String] = []
    /// Called on each apply (the simulation's cross-replica check).
    var onApply: ((Applied) -> Void)?
    /// Called with the service's state digest at some positions (the cross-replica state check).
    var onDigest: ((LogPosition, StateDigest) -> Void)?
    /// Called on each problem.
    var onProblem: ((String) -> Void)?

    public init() {}

    func record(_ entry: Applied) {
        applied.append(entry)
        onApply?(entry)
    }

    func record(_ digest: StateDigest, at position: LogPosition) {
        onDigest?(position, digest)
    }

    func problem(_ text: String) {
        problems.append(text)
        onProblem?(text)
    }
}

/// A deterministic echo service for the whole-node simulation: answers each message with its own
/// bytes and records what it applied, at which log position, in an `ApplyRecorder`. It also drives
/// timers from the request keys — a key divisible by 3 schedules timer `key` 0–60 ms ahead, a key
/// of 4 mod 9 cancels timer `key − 4` — and checks each timer event against its own record of what
/// is pending: never early, never twice, never after a cancel.
public struct RecordingEchoService: ClusteredService, StateDigestible {
    /// Where applies are recorded.
    public let recorder: ApplyRecorder
    var cluster: Cluster?
    /// The timers this replica expects pending (replicated state: equal on every replica).
    public private(set) var expectedTimers: [Int64: ClusterTime] = [:]
    public private(set) var messagesApplied: Int64 = 0
    public private(set) var timersFired: Int64 = 0
    /// Every request key applied (replicated state, in snapshots: what "every acknowledged request
    /// survives" is checked against after restarts from snapshots).
    public private(set) var appliedKeys: Set<Int64> = []
    /// The snapshot position this incarnation started from (0: the log's start).
    public private(set) var startPosition: LogPosition = .zero

    public init(recorder: ApplyRecorder) { self.recorder = recorder }

    public mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws {
        self.cluster = cluster
        guard let snapshot else { return }
        guard snapshot.serviceVersion == snapshotVersion else {
            throw SnapshotFormatError.unsupportedVersion(found: snapshot.serviceVersion, supported: snapshotVersion)
        }
        messagesApplied = try snapshot.readInt64()
        timersFired = try snapshot.readInt64()
        let timerCount = try snapshot.readInt64()
        for _ in 0..<timerCount { expectedTimers[try snapshot.readInt64()] = ClusterTime(rawValue: try snapshot.readInt64()) }
        let keyCount = try snapshot.readInt64()
        for _ in 0..<keyCount { appliedKeys.insert(try snapshot.readInt64()) }
        var probe = [UInt8](repeating: 0, count: 1)
        guard try probe.withUnsafeMutableBytes({ try snapshot.read(into: $0) }) == 0 else {
            throw SnapshotFormatError("recording service snapshot has bytes after its state")
        }
        startPosition = cluster.logPosition
        // The restored state must equal every other replica's at this position (checked across replicas).
        recorder.record(stateDigest(), at: cluster.logPosition)
    }

    public mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {}

    public mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in message { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash = (hash ^ UInt64(bitPattern: session.id)) &* 0x100_0000_01b3
        var key: Int64 = -1
        if message.count >= 8 { key = Int64(littleEndian: message.loadUnaligned(as: Int64.self)) }
        recorder.record(ApplyRecorder.Applied(position: cluster?.logPosition ?? .zero, key: key, hash: hash))
        messagesApplied += 1
        appliedKeys.insert(key)
        if let cluster, key >= 0 { driveTimers(key: key, timestamp: timestamp, cluster: cluster) }
        if messagesApplied % 16 == 0 { recorder.record(stateDigest(), at: cluster?.logPosition ?? .zero) }
        _ = session.offer(message)
    }

    private mutating func driveTimers(key: Int64, timestamp: ClusterTime, cluster: Cluster) {
        if key % 3 == 0 {
            let deadline = ClusterTime(rawValue: timestamp.rawValue + (key % 7) * 10_000_000)
            cluster.scheduleTimer(correlationId: key, deadline: deadline)
            expectedTimers[key] = deadline
        } else if key % 9 == 4 {
            let wasPending = cluster.cancelTimer(correlationId: key - 4)
            if wasPending != (expectedTimers.removeValue(forKey: key - 4) != nil) {
                recorder.problem("cancel of timer \(key - 4) at \(cluster.logPosition.rawValue) answered \(wasPending), the service's record says otherwise")
            }
        }
    }

    public mutating func onTimerEvent(correlationId: Int64, timestamp: ClusterTime) {
        let position = cluster?.logPosition ?? .zero
        guard let deadline = expectedTimers.removeValue(forKey: correlationId) else {
            recorder.problem("timer \(correlationId) fired at \(position.rawValue) but is not pending (cancelled, or fired before)")
            return
        }
        if timestamp < deadline {
            recorder.problem("timer \(correlationId) fired at \(position.rawValue) at time \(timestamp.rawValue), before its deadline \(deadline.rawValue)")
        }
        timersFired += 1
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for field in [correlationId, timestamp.rawValue] { hash = (hash ^ UInt64(bitPattern: field)) &* 0x100_0000_01b3 }
        recorder.record(ApplyRecorder.Applied(position: position, key: -1 - correlationId, hash: hash))
    }

    public func stateDigest() -> StateDigest {
        var digest = StateDigest()
        digest.add(-1, messagesApplied, timersFired)
        for (id, deadline) in expectedTimers { digest.add(id, deadline.rawValue) }
        for key in appliedKeys { digest.add(-2, key) }
        return digest
    }

    public mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {}

    /// Writes the replicated state (counts, pending timers, applied keys), sorted so the bytes do not
    /// depend on dictionary order, and records its digest at the snapshot's position.
    public mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {
        try writer.write(messagesApplied)
        try writer.write(timersFired)
        try writer.write(Int64(expectedTimers.count))
        for (id, deadline) in expectedTimers.sorted(by: { $0.key < $1.key }) {
            try writer.write(id)
            try writer.write(deadline.rawValue)
        }
        try writer.write(Int64(appliedKeys.count))
        for key in appliedKeys.sorted() { try writer.write(key) }
        recorder.record(stateDigest(), at: cluster?.logPosition ?? .zero)
    }
}
