import Glibc
import KeelCore

/// A node's counters region backed by `counters.dat` in its directory (DESIGN.md decision 13):
/// the node creates it and writes counters with plain stores; `keel stat` maps it read-only from
/// another process and reads the values live.
public final class CountersFile {
    /// The file's name inside a node directory.
    public static let fileName = "counters.dat"
    /// The number of counter slots a node file has by default.
    public static let defaultCapacity = 512

    private let mapping: SharedFileMapping
    /// The file's path.
    public var path: String { mapping.path }
    /// Reads the file (valid while this object lives).
    public let reader: CountersReader
    /// Allocates and writes counters; nil when the file was opened for reading.
    public let writer: CountersWriter?

    private init(mapping: SharedFileMapping, reader: CountersReader, writer: CountersWriter?) {
        self.mapping = mapping
        self.reader = reader
        self.writer = writer
    }

    /// Creates (or replaces) `directory/counters.dat` with room for `capacity` counters, stamped
    /// with this process's id and the epoch time now.
    public static func create(directory: String, capacity: Int = defaultCapacity) throws(IOError) -> CountersFile {
        var writer: CountersWriter?
        let startEpochNanos = SystemClock().epochNanos()
        let mapping = try SharedFileMapping.createReplacing(
            directory: directory, name: fileName, bytes: CountersLayout.requiredBytes(capacity: capacity)
        ) { memory in
            writer = CountersWriter(memory: memory, pid: getpid(), startEpochNanos: startEpochNanos)
        }
        // Safe to force: the file was formatted just above.
        let reader = try! CountersReader(memory: UnsafeRawBufferPointer(mapping.memory))
        return CountersFile(mapping: mapping, reader: reader, writer: writer)
    }

    /// Maps the counters file at `path` read-only and validates its header.
    public static func openForReading(path: String) throws(ObservabilityFileError) -> CountersFile {
        let mapping = try SharedFileMapping.openReadOnly(path: path, minimumBytes: CountersLayout.headerBytes)
        do {
            return CountersFile(mapping: mapping, reader: try CountersReader(memory: UnsafeRawBufferPointer(mapping.memory)), writer: nil)
        } catch {
            throw .format(path: path, error)
        }
    }

    /// True when the file at `path` is no longer the one this object maps (a restarted node
    /// replaced it, or it was removed): a live reader should open it again.
    public var isReplaced: Bool { SharedFileMapping.currentInode(path: path) != mapping.inode }
}
