import Glibc
import KeelClient
import KeelCore
import KeelIO

/// Where the `keel` executable is: `KEEL_BINARY` if set, else next to the running test bundle
/// (`swift test` builds every product into the same scratch directory), else `.build/debug/keel`.
enum KeelBinary {
    static var path: String? {
        var candidates: [String] = []
        if let fromEnvironment = getenv("KEEL_BINARY") { candidates.append(String(cString: fromEnvironment)) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if count > 0 {
            let exe = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // The bundle (or the binary inside it) sits in the scratch directory's debug folder.
            var directory = exe
            while directory.contains(".xctest"), let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) }
            candidates.append(directory + "/keel")
            if let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) }
            candidates.append(directory + "/keel")
        }
        candidates.append(".build/debug/keel")
        return candidates.first { access($0, X_OK) == 0 }
    }

    /// True when the binary exists and has a `node` subcommand.
    static var hasNodeCommand: Bool {
        guard let path else { return false }
        let output = "/tmp/keel-node-help-\(getpid()).txt"
        defer { unlink(output) }
        guard let process = try? ChildProcess.spawn(path, ["node", "--help"], outputPath: output) else { return false }
        guard process.waitForExit(timeoutNanos: 20_000_000_000) == 0, let file = fopen(output, "r") else { return false }
        defer { fclose(file) }
        var text = "", line = [CChar](repeating: 0, count: 1024)
        while fgets(&line, Int32(line.count), file) != nil { text += String(cString: line) }
        // An unknown subcommand before --help prints the root's help: look for the node's own flag.
        return text.contains("--cluster-id")
    }
}

enum HarnessError: Error, CustomStringConvertible {
    case spawn(String)
    case timeout(String)
    var description: String {
        switch self {
        case .spawn(let text), .timeout(let text): text
        }
    }
}

/// A child process started with posix_spawn, its output in a file; always reaped.
final class ChildProcess {
    let pid: pid_t
    private(set) var exitStatus: Int32?

    private init(pid: pid_t) { self.pid = pid }

    static func spawn(_ path: String, _ arguments: [String], outputPath: String) throws -> ChildProcess {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + arguments).map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard result == 0 else { throw HarnessError.spawn("posix_spawn \(path): errno \(result)") }
        return ChildProcess(pid: pid)
    }

    var isRunning: Bool {
        if exitStatus != nil { return false }
        var status: Int32 = 0
        let reaped = waitpid(pid, &status, WNOHANG)
        if reaped == pid { exitStatus = status; return false }
        return true
    }

    /// Waits up to `timeoutNanos` for the process to exit; its wait status, or nil if still running.
    @discardableResult
    func waitForExit(timeoutNanos: Int64) -> Int32? {
        let clock = SystemClock(), deadline = clock.monotonicNanos() + timeoutNanos
        while isRunning && clock.monotonicNanos() < deadline { usleep(5_000) }
        return exitStatus
    }

    func signal(_ number: Int32) {
        if exitStatus == nil { kill(pid, number) }
    }

    /// SIGTERM, a short grace, then SIGKILL; always reaps.
    func stop() {
        guard isRunning else { return }
        signal(SIGTERM)
        if waitForExit(timeoutNanos: 3_000_000_000) == nil {
            signal(SIGKILL)
            waitForExit(timeoutNanos: 10_000_000_000)
        }
    }

    deinit { stop() }
}

/// A 3-member cluster of `keel node` processes on loopback, in a temporary directory. `shutdown`
/// (also run by deinit) stops and reaps every process and removes the directory.
final class NodeCluster {
    struct Member {
        let id: Int32
        let memberPort: UInt16
        let clientPort: UInt16
        let directory: String
    }

    let binary: String
    let root: String
    let members: [Member]
    let sync: String
    private(set) var processes: [Int32: ChildProcess] = [:]
    /// More `keel node` arguments per member (e.g. `--route`), appended at each start.
    var extraArguments: [Int32: [String]] = [:]

    init(size: Int = 3, sync: String = "durable") throws {
        guard let binary = KeelBinary.path else { throw HarnessError.spawn("no keel binary: set KEEL_BINARY or run swift build --product keel") }
        self.binary = binary
        self.sync = sync
        var template = Array("/tmp/keel-node-test-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw HarnessError.spawn("mkdtemp failed") }
        root = String(cString: made)
        let ports = try Self.freePorts(2 * size)
        members = (0..<size).map { index in
            Member(id: Int32(index), memberPort: ports[2 * index], clientPort: ports[2 * index + 1], directory: "\(String(cString: made))/node\(index)")
        }
        for member in members { mkdir(member.directory, 0o755) }
    }

    deinit { shutdown() }

    var memberList: String {
        members.map { "\($0.id)=127.0.0.1:\($0.memberPort):\($0.clientPort)" }.joined(separator: ",")
    }

    var clientAddresses: [ClusterMemberAddress] {
        members.map { ClusterMemberAddress(id: MemberID($0.id), host: "127.0.0.1", clientPort: $0.clientPort) }
    }

    func start(_ id: Int32) throws {
        let member = members[Int(id)]
        processes[id] = try ChildProcess.spawn(binary, [
            "node", "--cluster-id", "test-cluster", "--id", "\(id)", "--members", memberList,
            "--dir", member.directory, "--service", "echo", "--sync", sync,
        ] + (extraArguments[id] ?? []), outputPath: "\(root)/node\(id).log")
    }

    func startAll() throws {
        for member in members { try start(member.id) }
    }

    /// kill -9, then reap.
    func kill9(_ id: Int32) {
        guard let process = processes[id] else { return }
        process.signal(SIGKILL)
        process.waitForExit(timeoutNanos: 10_000_000_000)
        processes[id] = nil
    }

    func isRunning(_ id: Int32) -> Bool { processes[id]?.isRunning ?? false }

    /// The node's log output so far (for failure messages).
    func output(_ id: Int32) -> String {
        guard let file = fopen("\(root)/node\(id).log", "r") else { return "" }
        defer { fclose(file) }
        var text = "", line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil { text += String(cString: line) }
        return String(text.suffix(4000))
    }

    /// A counter from the node's counters file, or nil when unreadable.
    func counter(_ id: Int32, _ type: CounterType) -> Int64? {
        guard let file = try? CountersFile.openForReading(path: "\(members[Int(id)].directory)/\(CountersFile.fileName)") else { return nil }
        return file.reader.snapshot().first { $0.type == type }?.value
    }

    func shutdown() {
        for process in processes.values { process.stop() }
        processes.removeAll()
        removeTree(root)
    }

    private func removeTree(_ path: String) {
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
    static func freePorts(_ count: Int) throws -> [UInt16] {
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
            guard bound else { throw HarnessError.spawn("no free port") }
            descriptors.append(descriptor)
            ports.append(UInt16(bigEndian: address.sin_port))
        }
        return ports
    }
}
