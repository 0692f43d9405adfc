import Glibc
import KeelCore
import KeelIO
import Synchronization

/// Set by SIGINT/SIGTERM; the demo's loops check it and clean up.
let demoInterrupted = Atomic<Bool>(false)

/// One `keel node` child process of the demo, its output in a file; reaped on stop.
final class DemoNode {
    let id: Int32
    let memberPort: UInt16
    let clientPort: UInt16
    let directory: String
    let logPath: String
    private(set) var pid: pid_t = 0
    private var exited = true

    init(id: Int32, memberPort: UInt16, clientPort: UInt16, root: String) {
        self.id = id
        self.memberPort = memberPort
        self.clientPort = clientPort
        directory = "\(root)/node\(id)"
        logPath = "\(root)/node\(id).log"
        mkdir(directory, 0o755)
    }

    /// Starts `executable node …` (this same binary) for this member.
    func start(executable: String, memberList: String, sync: String) throws(DemoError) {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let arguments = [executable, "node", "--cluster-id", "keel-demo", "--id", "\(id)", "--members", memberList,
                         "--dir", directory, "--service", "kv", "--sync", sync]
        let argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var child: pid_t = 0
        let result = posix_spawn(&child, executable, &actions, nil, argv, environ)
        guard result == 0 else { throw DemoError("could not start node \(id): \(errnoName(result))") }
        pid = child
        exited = false
    }

    var isRunning: Bool {
        guard !exited else { return false }
        var status: Int32 = 0
        if waitpid(pid, &status, WNOHANG) == pid { exited = true }
        return !exited
    }

    /// Sends `signal` and waits up to `timeoutNanos` for the exit; true once reaped.
    @discardableResult
    func signalAndReap(_ signal: Int32, timeoutNanos: Int64) -> Bool {
        guard isRunning else { return true }
        kill(pid, signal)
        let clock = SystemClock(), deadline = clock.monotonicNanos() + timeoutNanos
        while isRunning && clock.monotonicNanos() < deadline { usleep(5_000) }
        return !isRunning
    }

    /// SIGTERM, then SIGKILL if it lingers; always reaped.
    func stop() {
        if !signalAndReap(SIGTERM, timeoutNanos: 3_000_000_000) { signalAndReap(SIGKILL, timeoutNanos: 10_000_000_000) }
    }

    /// Role, term and positions from the node's counters file.
    func counters() -> (role: String, term: Int64, commit: Int64, append: Int64)? {
        guard let file = try? CountersFile.openForReading(path: "\(directory)/\(CountersFile.fileName)") else { return nil }
        let snapshot = file.reader.snapshot()
        func value(_ type: CounterType) -> Int64 { snapshot.first { $0.type == type }?.value ?? -1 }
        return (CounterType.role.describe(value: value(.role)), value(.term), value(.commitPosition), value(.appendPosition))
    }

    /// The last lines the node printed.
    func tail(lines: Int = 5) -> String {
        guard let file = fopen(logPath, "r") else { return "" }
        defer { fclose(file) }
        var all: [String] = [], line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil { all.append(String(cString: line)) }
        return all.suffix(lines).joined()
    }
}

/// A demo failure, printed as one line.
struct DemoError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

enum DemoFiles {
    /// This process's own executable (the demo runs its own `node` subcommand).
    static func selfExecutable() -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard count > 0 else { return CommandLine.arguments[0] }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func makeTemporaryDirectory() throws(DemoError) -> String {
        var template = Array("/tmp/keel-demo-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw DemoError("cannot create a temporary directory in /tmp: \(errnoName(errno))") }
        return String(cString: made)
    }

    static func removeTree(_ path: String) {
        guard let directory = opendir(path) else { unlink(path); return }
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            let child = "\(path)/\(name)"
            var info = stat()
            if lstat(child, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR { removeTree(child) } else { unlink(child) }
        }
        closedir(directory)
        rmdir(path)
    }

    /// `count` distinct loopback ports that were free a moment ago.
    static func freePorts(_ count: Int) throws(DemoError) -> [UInt16] {
        var descriptors: [Int32] = [], ports: [UInt16] = []
        defer { for descriptor in descriptors { close(descriptor) } }
        for _ in 0..<count {
            let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var length = socklen_t(MemoryLayout<sockaddr_in>.size)
            let bound = withUnsafeMutablePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && getsockname(descriptor, $0, &length) == 0 }
            }
            guard descriptor >= 0, bound else { throw DemoError("no free loopback port: \(errnoName(errno))") }
            descriptors.append(descriptor)
            ports.append(UInt16(bigEndian: address.sin_port))
        }
        return ports
    }
}
