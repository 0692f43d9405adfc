import Glibc
import KeelCore

/// Why an observability file (counters, error log) could not be opened for reading.
public enum ObservabilityFileError: Error, Equatable, Sendable, CustomStringConvertible {
    /// No file at the path.
    case missing(path: String)
    /// Opening, sizing or mapping the file failed.
    case io(IOError)
    /// The file exists but is not a readable file of the expected kind.
    case format(path: String, ObservabilityFormatError)

    public var description: String {
        switch self {
        case .missing(let path): "no file at \(path)"
        case .io(let error): "\(error)"
        case .format(let path, let error): "\(path): \(error)"
        }
    }
}

/// A whole file mapped MAP_SHARED, unmapped when this object goes away. The descriptor is closed
/// right after mapping (the mapping keeps the file alive).
final class SharedFileMapping {
    let path: String
    let memory: UnsafeMutableRawBufferPointer
    /// The file's inode when mapped: a reader compares it with the path's current inode to notice
    /// that a restarted writer replaced the file.
    let inode: UInt64

    private init(path: String, memory: UnsafeMutableRawBufferPointer, inode: UInt64) {
        self.path = path
        self.memory = memory
        self.inode = inode
    }

    deinit {
        if let base = memory.baseAddress { munmap(base, memory.count) }
    }

    /// Creates a fresh zero-filled file of `bytes` bytes at a temporary name next to `directory/name`,
    /// maps it for writing and calls `initialize` on the mapping; then renames it over `name`.
    ///
    /// Why a rename and not O_TRUNC: a reader (`keel stat`) may have the previous file mapped;
    /// shrinking that file under its mapping would kill the reader with SIGBUS. Renaming leaves the
    /// old inode intact for old readers, and new readers never see a half-initialised header.
    static func createReplacing(directory: String, name: String, bytes: Int,
                                initialize: (UnsafeMutableRawBufferPointer) -> Void) throws(IOError) -> SharedFileMapping {
        precondition(bytes > 0, "a shared file needs a positive size")
        let path = "\(directory)/\(name)"
        let temporaryPath = "\(directory)/.\(name).\(getpid()).tmp"
        let descriptor = try retryingOnInterrupt(.open, subject: temporaryPath) {
            open(temporaryPath, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        }
        defer { closeDescriptor(descriptor) }
        do {
            _ = try retryingOnInterrupt(.preallocate, subject: temporaryPath) { ftruncate(descriptor, off_t(bytes)) }
            let mapping = try mapWhole(descriptor, bytes: bytes, writable: true, path: path)
            initialize(mapping.memory)
            _ = try retryingOnInterrupt(.rename, subject: path) { rename(temporaryPath, path) }
            return SharedFileMapping(path: path, memory: mapping.memory, inode: try inodeOf(descriptor, path: path))
        } catch {
            unlink(temporaryPath)
            throw error
        }
    }

    /// Maps the whole file at `path` read-only.
    static func openReadOnly(path: String, minimumBytes: Int) throws(ObservabilityFileError) -> SharedFileMapping {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        if descriptor < 0 {
            let failure = errno
            if failure == ENOENT { throw .missing(path: path) }
            throw .io(IOError(.open, errno: failure, subject: path))
        }
        defer { closeDescriptor(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw .io(IOError(.stat, errno: errno, subject: path)) }
        let bytes = Int(status.st_size)
        guard bytes >= minimumBytes else { throw .format(path: path, .tooSmall(bytes: bytes, minimum: minimumBytes)) }
        do {
            let mapping = try mapWhole(descriptor, bytes: bytes, writable: false, path: path)
            return SharedFileMapping(path: path, memory: mapping.memory, inode: UInt64(status.st_ino))
        } catch {
            throw .io(error)
        }
    }

    /// The inode now at `path`, or nil when there is no file.
    static func currentInode(path: String) -> UInt64? {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        return UInt64(status.st_ino)
    }

    private struct RawMapping { var memory: UnsafeMutableRawBufferPointer }

    private static func mapWhole(_ descriptor: Int32, bytes: Int, writable: Bool, path: String) throws(IOError) -> RawMapping {
        let protection = writable ? PROT_READ | PROT_WRITE : PROT_READ
        guard let address = mmap(nil, bytes, protection, MAP_SHARED, descriptor, 0), address != MAP_FAILED else {
            throw IOError(.map, errno: errno, subject: path)
        }
        return RawMapping(memory: UnsafeMutableRawBufferPointer(start: address, count: bytes))
    }

    private static func inodeOf(_ descriptor: Int32, path: String) throws(IOError) -> UInt64 {
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw IOError(.stat, errno: errno, subject: path) }
        return UInt64(status.st_ino)
    }
}
