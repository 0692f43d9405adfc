import Glibc

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

    /// `count` distinct loopback ports that were free a moment ago.
    public static func freePorts(_ count: Int) throws(LocalClusterError) -> [UInt16] {
        var descriptors: [Int32] = [], ports: [UInt16] = []
        defer { for descriptor in descriptors { close(descriptor) } }
        for _ in 0..<count {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            guard descriptor >= 0 else { throw LocalClusterError("socket: \(String(cString: strerror(errno)))") }
            descriptors.append(descriptor)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
            }
            guard bound else { throw LocalClusterError("no free loopback port: \(String(cString: strerror(errno)))") }
            ports.append(UInt16(bigEndian: address.sin_port))
        }
        return ports
    }

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
