import KeelCore

/// Everything the log refuses or cannot do, with enough detail to act on.
public enum LogError: Error, Equatable, CustomStringConvertible {
    /// The storage failed (full disk, missing or unwritable directory, …).
    case storage(IOError)
    /// A payload larger than `LogConfiguration.maxPayloadBytes`.
    case payloadTooLarge(bytes: Int, maximumBytes: Int)
    /// A file written in a format version this code does not read.
    case unsupportedVersion(file: String, version: Int, supported: Int)
    /// A segment that belongs to another cluster.
    case foreignCluster(file: String, clusterID: UInt64, expected: UInt64)
    /// A bad frame below the durable position some valid batch records: never skipped, never served.
    case corruption(file: String, position: LogPosition, reason: String)
    /// A segment whose layout disagrees with the configuration or its name.
    case badSegment(file: String, reason: String)
    /// A hard-state or log-start file with no valid slot although something was written.
    case badRecordFile(file: String, reason: String)
    /// Frames handed to the follower path that do not validate.
    case invalidFrames(position: LogPosition, reason: String)
    /// A position that is not where the operation needs it (not the end, not a frame boundary, …).
    case badPosition(LogPosition, reason: String)
    /// The configuration cannot work.
    case badConfiguration(String)

    public var description: String {
        switch self {
        case .storage(let error): "log storage error: \(error)"
        case .payloadTooLarge(let bytes, let maximum):
            "message of \(bytes) bytes is larger than the maximum of \(maximum) bytes (LogConfiguration.maxPayloadBytes)"
        case .unsupportedVersion(let file, let version, let supported):
            "\(file) has log format version \(version); this build reads only version \(supported)"
        case .foreignCluster(let file, let clusterID, let expected):
            "\(file) belongs to cluster \(clusterID), not to this node's cluster \(expected); refusing to touch it"
        case .corruption(let file, let position, let reason):
            "log corruption in \(file) at position \(position.rawValue) (below the recorded durable position): \(reason)"
        case .badSegment(let file, let reason): "bad log segment \(file): \(reason)"
        case .badRecordFile(let file, let reason): "bad record file \(file): \(reason)"
        case .invalidFrames(let position, let reason): "invalid frames at position \(position.rawValue): \(reason)"
        case .badPosition(let position, let reason): "bad log position \(position.rawValue): \(reason)"
        case .badConfiguration(let reason): "bad log configuration: \(reason)"
        }
    }
}
