import Glibc
import KeelIO

/// A child process started with `posix_spawn`, its standard output and error appended to a file;
/// always reaped (by `stop`, `waitForExit`, or deinit).
public final class ChildProcess {
    public let pid: pid_t
    /// The wait status once the process has been reaped.
    public private(set) var exitStatus: Int32?

    private init(pid: pid_t) { self.pid = pid }

    /// Starts `path` with `arguments`, output appended to `outputPath`.
    public static func spawn(_ path: String, _ arguments: [String], outputPath: String) throws(LocalClusterError) -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard result == 0 else { throw LocalClusterError("cannot start \(path): \(String(cString: strerror(result)))") }
        return ChildProcess(pid: pid)
    }

    /// False once the process has exited (and been reaped).
    public var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid {
            exitStatus = status
            return false
        }
        return true
    }

    /// Waits up to `timeoutNanos` for the exit; the wait status, or nil if still running.
    @discardableResult
    public func waitForExit(timeoutNanos: Int64) -> Int32? {
        let clock = SystemClock(), deadline = clock.monotonicNanos() + timeoutNanos
        while isRunning && clock.monotonicNanos() < deadline { usleep(2_000) }
        return exitStatus
    }

    /// Sends `number` unless the process has already been reaped (its pid may be reused then).
    public func signal(_ number: Int32) {
        if exitStatus == nil { kill(pid, number) }
    }

    /// `kill -9`, then reap.
    public func kill9() {
        signal(SIGKILL)
        waitForExit(timeoutNanos: 10_000_000_000)
    }

    /// SIGTERM, a grace of `graceNanos`, then SIGKILL; always reaps.
    public func stop(graceNanos: Int64 = 3_000_000_000) {
        guard isRunning else { return }
        signal(SIGTERM)
        if waitForExit(timeoutNanos: graceNanos) == nil { kill9() }
    }

    /// CPU time (user + system) the process has used so far, or nil once it is gone.
    public var cpuNanos: Int64? { isRunning ? ProcessStatistics.cpuNanos(pid: pid) : nil }

    /// Its anonymous resident memory now (`RssAnon`), or nil once it is gone.
    public var rssAnonBytes: Int64? { isRunning ? ProcessStatistics.rssAnonBytes(pid: pid) : nil }

    deinit { stop() }
}
