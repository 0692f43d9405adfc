import Glibc
import KeelClient
import KeelCore
import KeelIO

/// A cluster of `keel node` processes on loopback, each in its own folder under a temporary root,
/// with its output in `root/nodeID.log`. Serves `keel demo`, `keel bench cluster` and the process
/// tests: start and stop members, `kill -9` one, read their counters files, find the leader.
/// `shutdown` (also run by deinit) stops and reaps every process and removes the root (unless
/// `keepsDirectory`).
public final class LocalCluster {
    /// One member: its id, ports and directory.
    public struct Member: Sendable {
        public let id: Int32
        public let memberPort: UInt16
        public let clientPort: UInt16
        public let directory: String
    }

    /// What a member's counters file says now.
    public struct MemberCounters: Sendable {
        public let role: RoleCounterValue?
        public let term: Int64
        public let commitPosition: Int64
        public let appendPosition: Int64

        public var roleName: String { role?.description ?? "unknown" }
    }

    public let binary: String
    public let root: String
    public let members: [Member]
    /// `durable` or `replicated` (`keel node --sync`).
    public let sync: String
    public let clusterID: String
    public let service: String
    public private(set) var processes: [Int32: ChildProcess] = [:]
    /// More `keel node` arguments per member (e.g. `--route`), appended at each start.
    public var extraArguments: [Int32: [String]] = [:]
    /// Leave the root folder in place at shutdown (for a look at logs and counters).
    public var keepsDirectory = false
    private var isShutDown = false

    /// Prepares (but does not start) `size` members of `binary` (a `keel` executable) with fresh
    /// loopback ports, in a new folder `directoryPrefix-XXXXXX`.
    public init(
        binary: String, size: Int = 3, sync: String = "durable", service: String = "echo",
        clusterID: String = "local-cluster", directoryPrefix: String = "/tmp/keel-cluster"
    ) throws(LocalClusterError) {
        precondition(size > 0, "a cluster needs members")
        self.binary = binary
        self.sync = sync
        self.service = service
        self.clusterID = clusterID
        let made = try LocalFiles.makeTemporaryDirectory(prefix: directoryPrefix)
        root = made
        let ports = try LocalFiles.freePorts(2 * size)
        members = (0..<size).map { index in
            Member(id: Int32(index), memberPort: ports[2 * index], clientPort: ports[2 * index + 1], directory: "\(made)/node\(index)")
        }
        for member in members { mkdir(member.directory, 0o755) }
    }

    deinit { shutdown() }

    /// The `--members` list of `keel node`: `ID=127.0.0.1:MEMBERPORT:CLIENTPORT,…`.
    public var memberList: String {
        members.map { "\($0.id)=127.0.0.1:\($0.memberPort):\($0.clientPort)" }.joined(separator: ",")
    }

    /// Where a client reaches each member.
    public var clientAddresses: [ClusterMemberAddress] {
        members.map { ClusterMemberAddress(id: MemberID($0.id), host: "127.0.0.1", clientPort: $0.clientPort) }
    }

    /// Starts member `id` (again, after a kill: on the same directory).
    public func start(_ id: Int32) throws(LocalClusterError) {
        let member = members[Int(id)]
        processes[id]?.stop()
        processes[id] = try ChildProcess.spawn(binary, [
            "node", "--cluster-id", clusterID, "--id", "\(id)", "--members", memberList,
            "--dir", member.directory, "--service", service, "--sync", sync,
        ] + (extraArguments[id] ?? []), outputPath: "\(root)/node\(id).log")
    }

    public func startAll() throws(LocalClusterError) {
        for member in members { try start(member.id) }
    }

    /// `kill -9` member `id`, then reap it.
    public func kill9(_ id: Int32) {
        processes[id]?.kill9()
        processes[id] = nil
    }

    /// SIGTERM (then SIGKILL if it lingers) and reap.
    public func stop(_ id: Int32) {
        processes[id]?.stop()
        processes[id] = nil
    }

    public func isRunning(_ id: Int32) -> Bool { processes[id]?.isRunning ?? false }

    /// The last `lastBytes` of the member's output (for failure messages).
    public func output(_ id: Int32, lastBytes: Int = 4000) -> String {
        guard let file = fopen("\(root)/node\(id).log", "r") else { return "" }
        defer { fclose(file) }
        var text = "", line = [CChar](repeating: 0, count: 4096)
        while fgets(&line, Int32(line.count), file) != nil { text += String(cString: line) }
        return String(text.suffix(lastBytes))
    }

    /// The last `lines` lines of the member's output.
    public func tail(_ id: Int32, lines: Int = 5) -> String {
        let text = output(id, lastBytes: 64 * 1024)
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines + 1).joined(separator: "\n")
    }

    /// One counter from the member's counters file, or nil when unreadable.
    public func counter(_ id: Int32, _ type: CounterType) -> Int64? {
        guard let file = try? CountersFile.openForReading(path: "\(members[Int(id)].directory)/\(CountersFile.fileName)") else { return nil }
        return file.reader.snapshot().first { $0.type == type }?.value
    }

    /// Role, term and positions from the member's counters file, or nil when unreadable.
    public func counters(_ id: Int32) -> MemberCounters? {
        guard let file = try? CountersFile.openForReading(path: "\(members[Int(id)].directory)/\(CountersFile.fileName)") else { return nil }
        let snapshot = file.reader.snapshot()
        func value(_ type: CounterType) -> Int64 { snapshot.first { $0.type == type }?.value ?? -1 }
        return MemberCounters(
            role: RoleCounterValue(rawValue: value(.role)), term: value(.term),
            commitPosition: value(.commitPosition), appendPosition: value(.appendPosition))
    }

    /// The running member whose counters say leader, in the highest term, if any.
    public func leader() -> Int32? {
        var best: (id: Int32, term: Int64)?
        for member in members where isRunning(member.id) {
            guard let counters = counters(member.id), counters.role == .leader else { continue }
            if best == nil || counters.term > best!.term { best = (member.id, counters.term) }
        }
        return best?.id
    }

    /// Stops and reaps every process; removes the root unless `keepsDirectory`. Idempotent.
    public func shutdown() {
        for process in processes.values { process.stop() }
        processes.removeAll()
        if !isShutDown && !keepsDirectory { LocalFiles.removeTree(root) }
        isShutDown = true
    }
}
