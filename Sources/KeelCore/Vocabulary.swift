// The units every module speaks. Distinct types, so a term is never passed where a position is meant.

/// A byte offset in the replicated log, counted from the log's very first byte (position 0), not
/// from the start of a segment. Frames begin at aligned positions.
public struct LogPosition: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64
    @inlinable public init(rawValue: Int64) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: Int64) { self.rawValue = rawValue }
    public static let zero = LogPosition(0)
    @inlinable public static func < (lhs: LogPosition, rhs: LogPosition) -> Bool { lhs.rawValue < rhs.rawValue }
    /// The position `bytes` further on.
    @inlinable public func advanced(by bytes: Int64) -> LogPosition { LogPosition(rawValue + bytes) }
    /// The number of bytes from `other` up to this position.
    @inlinable public func bytes(since other: LogPosition) -> Int64 { rawValue - other.rawValue }
    public var description: String { "@\(rawValue)" }
}

/// A Raft term. Terms only grow; term 0 means "before any election".
public struct Term: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64
    @inlinable public init(rawValue: Int64) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: Int64) { self.rawValue = rawValue }
    public static let zero = Term(0)
    @inlinable public static func < (lhs: Term, rhs: Term) -> Bool { lhs.rawValue < rhs.rawValue }
    @inlinable public var next: Term { Term(rawValue + 1) }
    public var description: String { "t\(rawValue)" }
}

/// The identity of one member of a cluster, fixed in its configuration (0, 1, 2, …).
public struct MemberID: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int32
    @inlinable public init(rawValue: Int32) { self.rawValue = rawValue }
    @inlinable public init(_ rawValue: Int32) { self.rawValue = rawValue }
    @inlinable public static func < (lhs: MemberID, rhs: MemberID) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "m\(rawValue)" }
}

/// Cluster time: nanoseconds since the Unix epoch, as stamped by the leader on each log entry.
/// Services see only this time; it never goes backwards, even across leader changes.
public struct ClusterTime: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible {
    public var rawValue: Int64
    @inlinable public init(rawValue: Int64) { self.rawValue = rawValue }
    @inlinable public init(nanosSinceEpoch: Int64) { self.rawValue = nanosSinceEpoch }
    public static let zero = ClusterTime(rawValue: 0)
    @inlinable public var nanosSinceEpoch: Int64 { rawValue }
    @inlinable public static func < (lhs: ClusterTime, rhs: ClusterTime) -> Bool { lhs.rawValue < rhs.rawValue }
    public var description: String { "\(rawValue)ns" }
}

/// Durability modes of the log (DESIGN.md decision 7).
public enum DurabilityMode: String, Sendable, CaseIterable {
    /// A node acknowledges only what fdatasync covers (group commit, one sync in flight).
    case durable
    /// A node acknowledges once the write completes; syncs happen in the background.
    case replicated
}
