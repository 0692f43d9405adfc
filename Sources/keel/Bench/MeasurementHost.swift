import Foundation
import Glibc

/// Facts about where a benchmark runs, printed with its figures so a reader can tell runs apart.
struct MachineDescription: Codable {
    var hostName: String
    var kernel: String
    var cpuModel: String
    var cores: Int
    var memoryGiB: Double
    var date: String
    var directory: String
    var fileSystem: String

    static func current(directory: String) -> MachineDescription {
        var names = utsname()
        uname(&names)
        func field<T>(_ value: T) -> String {
            withUnsafeBytes(of: value) { raw in String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self) }
        }
        let cpuinfo = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = cpuinfo.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        let formatter = ISO8601DateFormatter()
        return MachineDescription(
            hostName: field(names.nodename), kernel: field(names.release), cpuModel: model,
            cores: ProcessInfo.processInfo.activeProcessorCount,
            memoryGiB: Double(ProcessInfo.processInfo.physicalMemory) / Double(1 << 30),
            date: formatter.string(from: Date()), directory: directory, fileSystem: fileSystemName(of: directory))
    }
}

/// The file system type of the mount holding `path` (the longest mount point that prefixes it,
/// from /proc/self/mounts).
func fileSystemName(of path: String) -> String {
    let absolute = URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path
    guard let mounts = try? String(contentsOfFile: "/proc/self/mounts", encoding: .utf8) else { return "unknown" }
    var best = (mountPoint: "", type: "unknown")
    for line in mounts.split(separator: "\n") {
        let fields = line.split(separator: " ")
        guard fields.count >= 3 else { continue }
        let mountPoint = String(fields[1])
        let covers = absolute == mountPoint || absolute.hasPrefix(mountPoint == "/" ? "/" : mountPoint + "/")
        if covers && mountPoint.count >= best.mountPoint.count { best = (mountPoint, String(fields[2])) }
    }
    return best.type
}

/// Bytes available to an unprivileged writer on the file system holding `path`.
func freeBytes(at path: String) -> Int64 {
    var info = statvfs()
    guard statvfs(path, &info) == 0 else { return 0 }
    return Int64(info.f_bavail) * Int64(info.f_frsize)
}

/// CPU time (user + system) this process has used so far, in nanoseconds — including io_uring's
/// kernel worker threads, which run as threads of this process.
func processCPUNanos() -> Int64 {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    func nanos(_ time: timeval) -> Int64 { Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_usec) * 1000 }
    return nanos(usage.ru_utime) + nanos(usage.ru_stime)
}

/// CPU time (user + system) the calling thread has used so far, in nanoseconds: a cost that a busy
/// machine's waiting for a core does not inflate (kernel workers of io_uring and writeback not included).
func threadCPUNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

func monotonicNanos() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// A benchmark's failure: one line for the user, then a non-zero exit.
struct BenchmarkError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
