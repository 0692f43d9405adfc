import KeelCore

/// Why a snapshot file (or a catalog slot) cannot be used: the file, the first bad byte offset found,
/// and what is wrong there.
public struct SnapshotProblem: Error, Sendable, Equatable, CustomStringConvertible {
    /// What kind of problem, for callers that act on it.
    public enum Kind: Sendable, Equatable {
        /// A checksum, length or field does not hold: the bytes were damaged or never fully written.
        case corrupt
        /// The file was written in a format version this build cannot read.
        case unsupportedVersion(found: UInt32, supported: UInt32)
        /// The file is missing, or disagrees with what the catalog says of it.
        case mismatch
    }

    /// The file's name inside the archive directory (with the storage location for messages).
    public var file: String
    /// Byte offset in the file where the bad region starts (a record, the header, the trailer).
    public var offsetBytes: Int64
    public var kind: Kind
    public var reason: String

    public init(file: String, offsetBytes: Int64, kind: Kind, reason: String) {
        self.file = file
        self.offsetBytes = offsetBytes
        self.kind = kind
        self.reason = reason
    }

    public var description: String { "\(file) at offset \(offsetBytes): \(reason)" }
}

/// What the archive reports when an operation fails.
public enum ArchiveError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A storage operation failed.
    case storage(IOError)
    /// A snapshot file is damaged, of an unknown version, or disagrees with the catalog.
    case badSnapshot(SnapshotProblem)
    /// The catalog cannot be read: both slots are damaged, or it has an unknown format version.
    case badCatalog(SnapshotProblem)
    /// `beginSnapshot` while another snapshot is being written (one at a time).
    case snapshotInProgress(id: Int64)
    /// The snapshot being written failed or was abandoned; nothing more can be written to it.
    case snapshotAbandoned(id: Int64, reason: String)
    /// The caller broke a rule of the API (named in the message); nothing was changed.
    case invalidRequest(String)
    /// The catalog holds as many entries of a kind as it may.
    case catalogFull(String)

    public var description: String {
        switch self {
        case .storage(let error): "archive storage: \(error)"
        case .badSnapshot(let problem): "bad snapshot: \(problem)"
        case .badCatalog(let problem): "bad catalog: \(problem)"
        case .snapshotInProgress(let id): "snapshot \(id) is still being written; finish or abandon it first"
        case .snapshotAbandoned(let id, let reason): "snapshot \(id) was abandoned: \(reason)"
        case .invalidRequest(let message): "invalid archive request: \(message)"
        case .catalogFull(let message): "catalog full: \(message)"
        }
    }
}

extension SnapshotProblem {
    /// The message for an unknown format version, naming file, version and what is supported.
    static func unsupported(file: String, found: UInt32, supported: UInt32, what: String) -> SnapshotProblem {
        SnapshotProblem(
            file: file, offsetBytes: 8, kind: .unsupportedVersion(found: found, supported: supported),
            reason: "\(what) format version \(found); this build reads only version \(supported)")
    }
}
