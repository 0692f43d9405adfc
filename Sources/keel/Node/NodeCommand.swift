import ArgumentParser
import KeelCore
import KeelExamples
import KeelIO
import KeelNode
import KeelRuntime
import KeelService
import Glibc

/// `keel node`: runs one member of a cluster until SIGTERM/SIGINT (then exits 0).
struct NodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "node",
        abstract: "Run one cluster member (each member: ID=HOST:MEMBER_PORT:CLIENT_PORT).")

    @Option(name: .customLong("cluster-id"), help: "The cluster's name, fixed in DIR at the first start.")
    var clusterID: String

    @Option(name: .customLong("id"), help: "This member's id.")
    var memberID: Int32

    @Option(name: .customLong("members"), help: "0=127.0.0.1:9010:9020,1=…,2=…")
    var members: String

    @Option(name: .customLong("dir"), help: "The node's directory (log, hard state, counters).")
    var directory: String

    @Option(name: .customLong("service"), help: "The service to run: echo, kv (key-value store) or bank.")
    var service: String = "echo"

    @Option(name: .customLong("sync"), help: "durable (acknowledge what fdatasync covers) or replicated.")
    var sync: String = "durable"

    @Option(name: .customLong("route"), help: "ID=HOST:PORT: connect to member ID there, not at its listed address (repeatable).")
    var routes: [String] = []

    @Option(name: .customLong("threading"), help: "adaptive (the service agent runs on the consensus thread while the load is light, on its own otherwise), separate or shared.")
    var threading: String = "adaptive"

    @Flag(name: .customLong("shared-thread"), help: "The same as --threading shared.")
    var sharedThread = false

    static func threading<S>(_ name: String, shared: Bool) -> ClusterNode<S>.Threading {
        if shared { return .shared }
        switch name {
        case "separate": return .separate
        case "shared": return .shared
        default: return .adaptive(AdaptiveThreading())
        }
    }

    @Option(name: .customLong("secret-file"), help: "Clients must present NAME:SECRET, SECRET being this file's contents (a trailing newline is ignored).")
    var secretFile: String?

    @Option(name: .customLong("admin"), help: "With --secret-file: a client NAME allowed to send admin requests (repeatable).")
    var administrators: [String] = []

    @Option(name: .customLong("cluster-secret-file"), help: "Members prove to each other that they know this file's contents (HMAC-SHA256 challenge/response; a trailing newline is ignored); a peer that cannot is refused. Every member needs the same file.")
    var clusterSecretFile: String?

    @Option(name: .customLong("session-timeout-ms"), help: "Close a session silent (no request, no keep-alive) for this long.")
    var sessionTimeoutMillis: Int64 = 10_000

    @Option(name: .customLong("snapshot-every-mib"), help: "As leader, start a snapshot on every member after each N MiB of log (default: only on request, `keel tool snapshot`).")
    var snapshotEveryMiB: Int64?

    @Option(name: .customLong("snapshots-kept"), help: "Snapshots each member keeps in DIR/archive.")
    var snapshotsKept = 3

    @Option(name: .customLong("compaction-slack-mib"), help: "Once DIR/archive keeps --snapshots-kept snapshots, keep the log from this many MiB before the oldest (rounded down to a segment) and delete the segments before; a follower further behind needs a snapshot.")
    var compactionSlackMiB: Int64 = 64

    @Flag(name: .customLong("no-compaction"), help: "Never delete log segments (the log grows without bound).")
    var noCompaction = false

    @Option(name: .customLong("segment-mib"), help: "Log segment size in MiB (fixed when DIR is created; at least twice the largest message).")
    var segmentMiB: Int64 = 64

    @Flag(name: .customLong("rejoin"), help: "This member's directory was lost (wiped, a new disk): if DIR holds no state, rejoin the running cluster non-voting until the leader has caught it up (by a snapshot if its log no longer starts at 0). Harmless when DIR holds state.")
    var rejoin = false

    func run() throws {
        do {
            guard let durability = DurabilityMode(rawValue: sync) else {
                throw ConfigurationError("--sync must be durable or replicated, not '\(sync)'")
            }
            guard ["adaptive", "separate", "shared"].contains(threading) else {
                throw ConfigurationError("--threading must be adaptive, separate or shared, not '\(threading)'")
            }
            guard ["echo", "kv", "bank"].contains(service) else {
                throw ConfigurationError("unknown service '\(service)' (available: echo, kv, bank)")
            }
            let endpoints = try MemberEndpoint.parseList(members)
            var configuration = try ClusterConfiguration(
                clusterName: clusterID, members: endpoints, selfID: MemberID(memberID), durability: durability)
            for route in routes {
                let parts = route.split(separator: "=")
                let address = parts.count == 2 ? parts[1].split(separator: ":") : []
                guard address.count == 2, let id = Int32(parts[0]), let port = UInt16(address[1]), port > 0 else {
                    throw ConfigurationError("bad --route '\(route)': expected ID=HOST:PORT")
                }
                configuration.memberRoutes[MemberID(id)] = (String(address[0]), port)
            }
            guard sessionTimeoutMillis > 0 else { throw ConfigurationError("--session-timeout-ms must be positive") }
            configuration.sessionTimeoutNanos = sessionTimeoutMillis * 1_000_000
            if let snapshotEveryMiB {
                guard snapshotEveryMiB > 0 else { throw ConfigurationError("--snapshot-every-mib must be positive") }
                configuration.snapshotIntervalBytes = snapshotEveryMiB << 20
            }
            guard snapshotsKept >= 1 else { throw ConfigurationError("--snapshots-kept must be at least 1") }
            configuration.snapshotsKept = snapshotsKept
            guard compactionSlackMiB >= 0 else { throw ConfigurationError("--compaction-slack-mib must not be negative") }
            configuration.compactionSlackBytes = noCompaction ? nil : compactionSlackMiB << 20
            guard segmentMiB >= 1, segmentMiB <= 1 << 20 else { throw ConfigurationError("--segment-mib must be 1…1048576") }
            configuration.segmentLengthBytes = segmentMiB << 20
            configuration.rejoining = rejoin
            if let clusterSecretFile {
                configuration.clusterSecret = try Self.readSecret(clusterSecretFile, option: "--cluster-secret-file")
            }
            var authenticator: any Authenticator = AcceptAllAuthenticator()
            if let secretFile {
                authenticator = SharedSecretAuthenticator(secret: try Self.readSecret(secretFile, option: "--secret-file"), administrators: administrators)
            } else if !administrators.isEmpty {
                throw ConfigurationError("--admin needs --secret-file (without one every client may administer)")
            }
            switch service {
            case "kv": try run(KeyValueService(), configuration, authenticator)
            case "bank": try run(BankService(), configuration, authenticator)
            default: try run(EchoService(), configuration, authenticator)
            }
        } catch let error as ConfigurationError {
            printToStandardError("keel node: \(error.message)")
            throw ExitCode(2)
        } catch let error as ExitCode {
            throw error
        } catch {
            printToStandardError("keel node: \(error)")
            throw ExitCode(1)
        }
    }

    private func run<Service: ClusteredService & SendableMetatype>(
        _ instance: Service, _ configuration: ClusterConfiguration, _ authenticator: any Authenticator
    ) throws {
        let node = try ClusterNode(
            configuration: configuration, directory: directory, service: instance, threading: Self.threading(threading, shared: sharedThread),
            authenticator: authenticator)
        let membersAuthenticated = configuration.clusterSecret == nil ? "" : "; members authenticated with the cluster secret"
        printToStandardError("keel node \(memberID): io_uring available; service \(service); cluster '\(clusterID)' \(configuration.canonicalDescription), dir \(directory)\(membersAuthenticated)")
        try node.runUntilTerminated()
    }

    /// The shared secret in `path` (given as `option`): its bytes without one trailing newline; 1…4096 bytes.
    static func readSecret(_ path: String, option: String) throws -> [UInt8] {
        guard let file = fopen(path, "rb") else { throw ConfigurationError("cannot read \(option) \(path)") }
        defer { fclose(file) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4097)
        while bytes.count <= 4097 {
            let count = fread(&chunk, 1, chunk.count, file)
            if count == 0 { break }
            bytes += chunk[0..<count]
        }
        if bytes.last == 0x0A { bytes.removeLast() }
        if bytes.last == 0x0D { bytes.removeLast() }
        guard !bytes.isEmpty, bytes.count <= 4096 else { throw ConfigurationError("\(option) \(path) must hold 1…4096 bytes") }
        return bytes
    }
}
