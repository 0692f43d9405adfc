import Glibc

/// Whether the process that wrote a counters file or error log is still there.
public enum ProcessLiveness: Equatable, Sendable {
    /// The process exists (it may be another process that reused the id; ids are reused only
    /// after the original has gone and many others have started).
    case running
    /// No such process, or only its zombie waiting to be reaped.
    case exited

    /// Checks process `pid` with `kill(pid, 0)` and its state in /proc.
    public static func of(pid: Int32) -> ProcessLiveness {
        guard pid > 0 else { return .exited }
        if kill(pid, 0) != 0 && errno == ESRCH { return .exited }
        return isZombie(pid: pid) ? .exited : .running
    }

    /// Reads the state letter of /proc/PID/stat ("pid (comm) S ..."); `Z` is a zombie.
    private static func isZombie(pid: Int32) -> Bool {
        let descriptor = open("/proc/\(pid)/stat", O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return false }
        defer { close(descriptor) }
        var buffer = [UInt8](repeating: 0, count: 512)
        let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return false }
        // The command name may contain spaces or parentheses: the state follows the last ')'.
        guard let closingParenthesis = buffer[0..<count].lastIndex(of: UInt8(ascii: ")")), closingParenthesis + 2 < count else { return false }
        return buffer[closingParenthesis + 2] == UInt8(ascii: "Z")
    }
}
