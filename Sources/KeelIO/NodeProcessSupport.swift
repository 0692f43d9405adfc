import Glibc
import KeelCore

// Small OS services a node process needs (added for KeelNode, which may not import Glibc):
// a directory lock, small text files, the kernel boot id, and waiting for SIGTERM/SIGINT.

/// An exclusive `flock` on a file, held until `release()` or process exit.
public final class DirectoryLock {
    private var descriptor: Int32

    /// Creates the directory if missing and locks `directory/lock`; throws `IOError(.open, EWOULDBLOCK…)`
    /// when another process holds it.
    public init(directory: String) throws(IOError) {
        var prefix = directory.hasPrefix("/") ? "" : "."
        for component in directory.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) != 0 && errno != EEXIST { throw IOError(.open, errno: errno, subject: prefix) }
        }
        let path = directory + "/lock"
        let fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IOError(.open, errno: errno, subject: path) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw IOError(.open, errno: code, subject: path)
        }
        descriptor = fd
    }

    /// Releases the lock.
    public func release() {
        guard descriptor >= 0 else { return }
        flock(descriptor, LOCK_UN)
        Glibc.close(descriptor)
        descriptor = -1
    }

    deinit { release() }
}

/// Small whole-file reads and atomic writes (control path only).
public enum SmallFile {
    /// The file's contents, or nil when it does not exist.
    public static func read(_ path: String) throws(IOError) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw IOError(.open, errno: errno, subject: path)
        }
        defer { Glibc.close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 4096) }
            if n < 0 { throw IOError(.read, errno: errno, subject: path) }
            if n == 0 { break }
            bytes.append(contentsOf: chunk[0..<n])
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Writes `text` to a temporary file, fsyncs it, renames it over `path` and fsyncs the directory.
    public static func writeAtomically(_ text: String, to path: String, directory: String) throws(IOError) {
        let temporary = path + ".tmp"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw IOError(.open, errno: errno, subject: temporary) }
        let bytes = Array(text.utf8)
        let written = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        Glibc.close(fd)
        guard written == bytes.count, synced == 0 else { throw IOError(.write, errno: errno, subject: temporary) }
        guard rename(temporary, path) == 0 else { throw IOError(.rename, errno: errno, subject: path) }
        let directoryFD = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            Glibc.close(directoryFD)
        }
    }

    /// True when the process may create files in `directory`.
    public static func isWritableDirectory(_ directory: String) -> Bool { access(directory, W_OK) == 0 }
}

/// The kernel's boot id (`/proc/sys/kernel/random/boot_id`) folded to 64 bits; changes at every boot.
public func currentBootID() -> UInt64 {
    let text = (try? SmallFile.read("/proc/sys/kernel/random/boot_id")) ?? nil
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325
    for byte in (text ?? "unknown").utf8 where byte != 0x0A { hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3 }
    return hash
}

/// Blocks SIGTERM and SIGINT in the calling thread (call before starting other threads, so they
/// inherit the mask) and later waits for one of them.
public enum TerminationSignals {
    /// Blocks the signals; threads started afterwards inherit the mask.
    public static func block() {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    /// Waits up to `timeoutNanos` for SIGTERM or SIGINT; returns the signal's name, or nil on timeout.
    public static func wait(timeoutNanos: Int64) -> String? {
        var set = sigset_t()
        sigemptyset(&set)
        sigaddset(&set, SIGTERM)
        sigaddset(&set, SIGINT)
        var timeout = timespec(tv_sec: Int(timeoutNanos / 1_000_000_000), tv_nsec: Int(timeoutNanos % 1_000_000_000))
        let signal = sigtimedwait(&set, nil, &timeout)
        switch signal {
        case SIGTERM: return "SIGTERM"
        case SIGINT: return "SIGINT"
        default: return nil
        }
    }
}

/// Writes one line to standard error (KeelNode's messages; it cannot import Glibc).
public func printToStandardError(_ line: String) {
    var text = line
    text.append("\n")
    _ = text.utf8CString.withUnsafeBufferPointer { Glibc.write(2, $0.baseAddress, $0.count - 1) }
}
