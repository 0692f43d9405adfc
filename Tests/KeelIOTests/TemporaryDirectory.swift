import Glibc
import KeelCore

/// A fresh directory under /tmp, removed with its contents when the test ends.
final class TemporaryDirectory {
    let path: String

    init(_ label: String = "keel-io-test") {
        var template = Array("/tmp/\(label)-XXXXXX".utf8CString)
        let created = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(created != nil, "mkdtemp failed: errno \(errno)")
        path = String(cString: created!)
    }

    deinit { Self.remove(path) }

    /// Removes a directory tree (files and subdirectories).
    private static func remove(_ path: String) {
        guard let directory = opendir(path) else { return }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name == "." || name == ".." { continue }
            let child = "\(path)/\(name)"
            if entry.pointee.d_type == UInt8(DT_DIR) { remove(child) } else { unlink(child) }
        }
        closedir(directory)
        rmdir(path)
    }
}

/// Monotonic nanoseconds, for timing assertions in tests.
func nowNanos() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

/// Reaps `storage` until `count` completions have arrived (waiting in the kernel in between), or
/// the deadline passes. Returns them in arrival order.
func collectCompletions(from storage: some Storage, count: Int, deadlineNanos: Int64 = 10_000_000_000) throws -> [IOCompletion] {
    var buffer = IOCompletionBuffer(capacity: 64)
    var collected: [IOCompletion] = []
    let start = nowNanos()
    try storage.flushSubmissions()
    while collected.count < count && nowNanos() - start < deadlineNanos {
        storage.reapCompletions(into: &buffer)
        for index in 0..<buffer.count { collected.append(buffer[index]) }
        buffer.removeAll()
        if collected.count < count { try storage.waitForCompletions(timeoutNanos: 100_000_000) }
    }
    return collected
}
