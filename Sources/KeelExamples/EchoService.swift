import KeelCore
import KeelService

/// The simplest service: answers every message with the same bytes, and counts what it applied
/// (so tests can compare replicas). Used by `keel node --service echo` and the benchmarks.
public struct EchoService: ClusteredService, StateDigestible {
    /// Messages applied so far.
    public private(set) var messagesApplied: Int64 = 0
    /// Sessions currently open.
    public private(set) var openSessions = 0
    /// A running checksum (FNV-1a) over every message applied, in order: equal on replicas that
    /// applied the same messages in the same order.
    public private(set) var digest: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    public mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws {
        guard let snapshot else { return }
        guard snapshot.serviceVersion == snapshotVersion else {
            throw SnapshotFormatError.unsupportedVersion(found: snapshot.serviceVersion, supported: snapshotVersion)
        }
        messagesApplied = try snapshot.readInt64()
        openSessions = Int(try snapshot.readInt64())
        digest = try snapshot.readUInt64()
    }

    public mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {
        openSessions += 1
    }

    public mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        messagesApplied += 1
        for byte in message { digest = (digest ^ UInt64(byte)) &* 0x100_0000_01b3 }
        digest = (digest ^ UInt64(bitPattern: session.id)) &* 0x100_0000_01b3
        session.offer(message)
    }

    public mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {
        openSessions -= 1
    }

    public mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {
        try writer.write(messagesApplied)
        try writer.write(Int64(openSessions))
        try writer.write(digest)
    }

    public func stateDigest() -> StateDigest {
        var state = StateDigest()
        state.add(messagesApplied, Int64(openSessions), Int64(bitPattern: digest))
        return state
    }
}
