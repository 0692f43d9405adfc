import Glibc
import KeelCore

/// A node's bounded distinct-error log backed by `errors.dat` in its directory; `keel tool errors`
/// reads it from another process.
public final class ErrorLogFile {
    /// The file's name inside a node directory.
    public static let fileName = "errors.dat"

    private let mapping: SharedFileMapping
    /// The file's path.
    public var path: String { mapping.path }
    /// Reads the log (valid while this object lives).
    public let reader: ErrorLogReader
    /// Records errors (thread-safe); nil when the file was opened for reading.
    public let writer: ErrorLogWriter?

    private init(mapping: SharedFileMapping, reader: ErrorLogReader, writer: ErrorLogWriter?) {
        self.mapping = mapping
        self.reader = reader
        self.writer = writer
    }

    /// Creates (or replaces) `directory/errors.dat` of `fileBytes` bytes (1 MiB by default).
    public static func create(directory: String, fileBytes: Int = ErrorLogLayout.defaultFileBytes) throws(IOError) -> ErrorLogFile {
        precondition(fileBytes >= ErrorLogLayout.headerBytes, "an error log file needs room for its header")
        var writer: ErrorLogWriter?
        let startEpochNanos = SystemClock().epochNanos()
        let mapping = try SharedFileMapping.createReplacing(directory: directory, name: fileName, bytes: fileBytes) { memory in
            writer = ErrorLogWriter(memory: memory, pid: getpid(), startEpochNanos: startEpochNanos)
        }
        // Safe to force: the file was formatted just above.
        let reader = try! ErrorLogReader(memory: UnsafeRawBufferPointer(mapping.memory))
        return ErrorLogFile(mapping: mapping, reader: reader, writer: writer)
    }

    /// Maps the error log at `path` read-only and validates its header.
    public static func openForReading(path: String) throws(ObservabilityFileError) -> ErrorLogFile {
        let mapping = try SharedFileMapping.openReadOnly(path: path, minimumBytes: ErrorLogLayout.headerBytes)
        do {
            return ErrorLogFile(mapping: mapping, reader: try ErrorLogReader(memory: UnsafeRawBufferPointer(mapping.memory)), writer: nil)
        } catch {
            throw .format(path: path, error)
        }
    }
}
