import Glibc

/// A fresh directory under /tmp for one test, removed with its files when released.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "keel-storage-spec") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed: errno \(errno)")
        path = String(cString: created!)
    }

    deinit {
        // The spec creates only regular files directly inside the directory.
        if let directory = opendir(path) {
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { unlink("\(path)/\(name)") }
            }
            closedir(directory)
        }
        rmdir(path)
    }

    /// True when the directory no longer exists (for checking the cleanup itself).
    static func isGone(_ path: String) -> Bool { access(path, F_OK) != 0 }
}
