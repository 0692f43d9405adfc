import Glibc

/// CPU time and memory of a process, read from `/proc` (Linux).
public enum ProcessStatistics {
    /// utime + stime of `pid` (all its threads, io_uring workers included) from `/proc/PID/stat`.
    public static func cpuNanos(pid: pid_t) -> Int64? {
        guard let text = readSmallFile("/proc/\(pid)/stat") else { return nil }
        return cpuNanos(statLine: text)
    }

    /// This process's own CPU time, from `/proc/self/stat`.
    public static func ownCPUNanos() -> Int64? {
        readSmallFile("/proc/self/stat").flatMap(cpuNanos(statLine:))
    }

    /// Parses a `/proc/PID/stat` line: fields 14 and 15 (utime, stime, in clock ticks) counted after
    /// the command name, which is in parentheses and may itself hold spaces.
    public static func cpuNanos(statLine: String) -> Int64? {
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        // fields[0] is the state (field 3), so utime (field 14) is fields[11] and stime fields[12].
        guard fields.count > 12, let user = Int64(fields[11]), let system = Int64(fields[12]) else { return nil }
        let ticksPerSecond = Int64(sysconf(Int32(_SC_CLK_TCK)))
        return (user + system) * (1_000_000_000 / max(1, ticksPerSecond))
    }

    /// `RssAnon` of `pid` in bytes, from `/proc/PID/status`.
    public static func rssAnonBytes(pid: pid_t) -> Int64? {
        guard let text = readSmallFile("/proc/\(pid)/status") else { return nil }
        return rssAnonBytes(statusText: text)
    }

    /// Parses the `RssAnon:   1234 kB` line of a `/proc/PID/status` text.
    public static func rssAnonBytes(statusText: String) -> Int64? {
        for line in statusText.split(separator: "\n") where line.hasPrefix("RssAnon:") {
            let words = line.split(separator: " ", omittingEmptySubsequences: true)
            guard words.count >= 3, let kibibytes = Int64(words[1]) else { return nil }
            return kibibytes * 1024
        }
        return nil
    }

    /// A whole small file, or nil when it cannot be read.
    static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { break }
            bytes += chunk[0..<count]
        }
        return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self)
    }
}
