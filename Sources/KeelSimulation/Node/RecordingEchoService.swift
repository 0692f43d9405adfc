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

    /// Every session message applied, in the order it was applied.
    public private(set) var applied: [Applied] = []
    /// Called on each apply (the simulation's cross-replica check).
    var onApply: ((Applied) -> Void)?

    public init() {}

    func record(_ entry: Applied) {
        applied.append(entry)
        onApply?(entry)
    }
}

/// A deterministic echo service for the whole-node simulation: answers each message with its own
/// bytes and records what it applied, at which log position, in an `ApplyRecorder`.
public struct RecordingEchoService: ClusteredService {
    /// Where applies are recorded.
    public let recorder: ApplyRecorder
    var cluster: Cluster?

    public init(recorder: ApplyRecorder) { self.recorder = recorder }

    public mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws { self.cluster = cluster }

    public mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {}

    public mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in message { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
        hash = (hash ^ UInt64(bitPattern: session.id)) &* 0x100_0000_01b3
        var key: Int64 = -1
        if message.count >= 8 { key = Int64(littleEndian: message.loadUnaligned(as: Int64.self)) }
        recorder.record(ApplyRecorder.Applied(position: cluster?.logPosition ?? .zero, key: key, hash: hash))
        _ = session.offer(message)
    }

    public mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {}

    public mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {
        throw SnapshotFormatError("the recording echo service keeps its record outside the replicated state and takes no snapshots")
    }
}
