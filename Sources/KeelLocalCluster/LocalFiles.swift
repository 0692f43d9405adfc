import Glibc
import Synchronization

/// Temporary directories, removal and free ports for local clusters and benchmarks.
public enum LocalFiles {
    /// A fresh directory `prefix-XXXXXX` (`mkdtemp`).
    public static func makeTemporaryDirectory(prefix: String) throws(LocalClusterError) -> String {
        var template = Array("\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else {
            throw LocalClusterError("cannot create a temporary directory \(prefix)-XXXXXX: \(String(cString: strerror(errno)))")
        }
        return String(cString: made)
    }

    /// Removes `path` and everything below it (no symlinks followed).
    public static func removeTree(_ path: String) {
        guard let directory = opendir(path) else { unlink(path); return }
        // Names first, deletions after: unlinking while readdir walks the directory can skip entries.
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name != "." && name != ".." { names.append(name) }
        }
        closedir(directory)
        for name in names {
            let child = "\(path)/\(name)"
            var info = stat()
            if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
        }
        rmdir(path)
    }

    /// `count` distinct loopback ports that were free a moment ago, taken below the kernel's
    /// ephemeral range: a port the kernel hands out for `bind(0)` is also what it gives outgoing
    /// connections, so one of those (another test's client) could take it before the node listens.
    /// Calls in one process never return the same port twice until the range wraps.
    public static func freePorts(_ count: Int) throws(LocalClusterError) -> [UInt16] {
        var descriptors: [Int32] = [], ports: [UInt16] = []
        defer { for descriptor in descriptors { close(descriptor) } }
        var attempts = 0
        while ports.count < count {
            attempts += 1
            guard attempts <= portRangeSize else { throw LocalClusterError("no free loopback port in \(portRangeStart)…\(portRangeStart + portRangeSize - 1)") }
            let port = UInt16(portRangeStart + nextPortOffset.add(1, ordering: .relaxed).oldValue % portRangeSize)
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw LocalClusterError("socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            address.sin_port = port.bigEndian
            let bound = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            if bound {
                descriptors.append(descriptor)
                ports.append(port)
            } else {
                close(descriptor)  // in use: try the next
            }
        }
        return ports
    }

    /// Ports 20000–32767: below Linux's default ephemeral range (32768–60999). Each process starts
    /// at an offset from its pid, so concurrent test processes rarely probe the same ports.
    private static let portRangeStart = 20_000
    private static let portRangeSize = 12_768
    private static let nextPortOffset = Atomic<Int>(Int(getpid()) &* 97 % 12_768)

    /// This process's own executable (`/proc/self/exe`).
    public static func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A local cluster or process failure, as one line.
public struct LocalClusterError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
