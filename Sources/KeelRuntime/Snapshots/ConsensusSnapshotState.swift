import KeelCore
import KeelService

/// The runtime's half of a snapshot (DESIGN.md decision 11): the replicated state the runtime keeps
/// beside the service's, exact at the snapshot's log position — the session table (sequences and
/// response windows), the timers with their schedule-sequence counter, the cluster time and term of
/// the last entry, and the membership. Written by the service agent, which holds that state at
/// every position; restored into both agents at a restart.
///
/// ```
/// consensus-state section (little-endian):
///  0       8        16     24          32           40            48
/// +-------+--------+------+-----------+------------+-------------+--------------------------+
/// | magic | format | log  | term      | cluster    | cluster id  | member count, then ids   |
/// | i64   | version| pos. | i64       | time ns    | u64         | (i64 each)               |
/// |"KCONS"| i64 = 1| i64  |           | i64        |             |                          |
/// +-------+--------+------+-----------+------------+-------------+--------------------------+
/// then (format 2) flags i64 (bit 0: the cluster is suspended), then the timers
/// (ReplicatedTimers.write), then the session table (SessionTable.serialized, length-prefixed u32).
/// Format 1 (no flags) is still read: not suspended.
/// ```
public struct ConsensusSnapshotState: Sendable, Equatable {
    static let magic: Int64 = 0x5342_4E4F_434B  // "KCONS" + 'S'
    static let formatVersion: Int64 = 2
    /// Bounds a reader accepts (the state is small next to the service's: sessions × window).
    static let membersMax = 64
    static let sessionTableBytesMax = 1 << 30

    /// Every entry below this position is in the state; none at or above it.
    public var position: LogPosition
    /// The term of the last entry in the state.
    public var term: Term
    /// The cluster time of the last entry in the state.
    public var timestamp: ClusterTime
    /// The cluster this state belongs to.
    public var clusterID: UInt64
    /// The members at that position.
    public var members: [MemberID]
    /// The timers pending at that position.
    public var timers: ReplicatedTimers
    /// The session table at that position.
    public var sessions: SessionTable
    /// The cluster is suspended at that position (a suspend entry not followed by a resume).
    public var suspended: Bool

    public init(
        position: LogPosition, term: Term, timestamp: ClusterTime, clusterID: UInt64, members: [MemberID], timers: ReplicatedTimers,
        sessions: SessionTable, suspended: Bool = false
    ) {
        self.suspended = suspended
        self.position = position
        self.term = term
        self.timestamp = timestamp
        self.clusterID = clusterID
        self.members = members
        self.timers = timers
        self.sessions = sessions
    }

    /// Writes the section (layout above).
    public func write(to writer: any SnapshotWriter) throws {
        for value in [Self.magic, Self.formatVersion, position.rawValue, term.rawValue, timestamp.rawValue] { try writer.write(value) }
        try writer.write(clusterID)
        try writer.write(Int64(members.count))
        for member in members { try writer.write(Int64(member.rawValue)) }
        try writer.write(Int64(suspended ? 1 : 0))
        try timers.write(to: writer)
        try sessions.serialized().withUnsafeBytes { try writer.writeLengthPrefixed($0) }
    }

    /// Reads what `write(to:)` wrote, checking every field; sessions get `responseWindow` limits.
    public static func read(from reader: any SnapshotReader, responseWindow: ResponseWindowLimits) throws -> ConsensusSnapshotState {
        let magic = try reader.readInt64()
        guard magic == Self.magic else { throw SnapshotFormatError("consensus state: magic 0x\(String(magic, radix: 16)), not a consensus section") }
        let version = try reader.readInt64()
        guard version == 1 || version == Self.formatVersion else {
            throw SnapshotFormatError("consensus state format version \(version); this build reads version \(Self.formatVersion)")
        }
        let position = LogPosition(try reader.readInt64())
        let term = Term(try reader.readInt64())
        let timestamp = ClusterTime(rawValue: try reader.readInt64())
        let clusterID = try reader.readUInt64()
        let memberCount = try reader.readInt64()
        guard position.rawValue >= 0, term.rawValue >= 0, memberCount > 0, memberCount <= Self.membersMax else {
            throw SnapshotFormatError("consensus state: position \(position.rawValue), term \(term.rawValue), \(memberCount) members")
        }
        var members: [MemberID] = []
        for _ in 0..<memberCount {
            let id = try reader.readInt64()
            guard id >= 0 && id <= Int64(Int32.max) else { throw SnapshotFormatError("consensus state: member id \(id)") }
            members.append(MemberID(Int32(id)))
        }
        let flags = version >= 2 ? try reader.readInt64() : 0
        guard flags & ~1 == 0 else { throw SnapshotFormatError("consensus state: unknown flags 0x\(String(flags, radix: 16))") }
        let timers = try ReplicatedTimers.read(from: reader)
        let tableBytes = try reader.readLengthPrefixed(maxBytes: Self.sessionTableBytesMax)
        let sessions: SessionTable
        do { sessions = try SessionTable(serialized: tableBytes, limits: responseWindow) } catch {
            throw SnapshotFormatError("consensus state: \(error)")
        }
        return ConsensusSnapshotState(
            position: position, term: term, timestamp: timestamp, clusterID: clusterID, members: members, timers: timers, sessions: sessions,
            suspended: flags & 1 != 0)
    }
}
