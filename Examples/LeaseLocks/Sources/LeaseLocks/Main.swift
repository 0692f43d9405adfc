import Foundation
import Keel

/// `LeaseLocks node --id N --members 0=127.0.0.1:9010:9020,… --dir DIR` runs one member until
/// SIGTERM/SIGINT. `LeaseLocks try-it` starts a three-member cluster in this process on loopback,
/// takes and loses a lease through a client, and stops (what CI runs).
@main
struct LeaseLocksMain {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "node": try runNode(options(arguments.dropFirst()))
        case "try-it": try await tryIt()
        default:
            print("usage: LeaseLocks node --id N --members ID=HOST:MEMBER_PORT:CLIENT_PORT,… --dir DIR\n       LeaseLocks try-it")
            exit(2)
        }
    }

    static func options(_ words: ArraySlice<String>) -> [String: String] {
        var result: [String: String] = [:]
        var iterator = words.makeIterator()
        while let key = iterator.next(), let value = iterator.next() { result[key] = value }
        return result
    }

    static func runNode(_ options: [String: String]) throws {
        guard let id = options["--id"].flatMap(Int32.init), let members = options["--members"], let directory = options["--dir"] else {
            print("node needs --id, --members and --dir")
            exit(2)
        }
        let configuration = try ClusterConfiguration(
            clusterName: "lease-locks", members: MemberEndpoint.parseList(members), selfID: MemberID(id), durability: .durable)
        let node = try ClusterNode(configuration: configuration, directory: directory, service: LeaseLockService())
        try node.runUntilTerminated()
    }

    /// Three members in this process, a client, a lease granted, refused to another holder, expired
    /// by its timer, then granted to the other.
    static func tryIt() async throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("lease-locks-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        let basePort = UInt16(20_000 + Int(getpid()) % 20_000)
        let endpoints = (0..<3).map {
            MemberEndpoint(id: MemberID(Int32($0)), host: "127.0.0.1", memberPort: basePort + UInt16($0), clientPort: basePort + 10 + UInt16($0))
        }
        var nodes: [ClusterNode<LeaseLockService>] = []
        defer { for node in nodes { try? node.stop() } }
        for endpoint in endpoints {
            let directory = "\(root)/\(endpoint.id.rawValue)"
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            let configuration = try ClusterConfiguration(clusterName: "lease-locks", members: endpoints, selfID: endpoint.id, durability: .durable)
            let node = try ClusterNode(configuration: configuration, directory: directory, service: LeaseLockService())
            try node.start()
            nodes.append(node)
        }
        let client = ClusterClient(
            configuration: ClusterClientConfiguration(members: endpoints.map { ClusterMemberAddress(id: $0.id, host: $0.host, clientPort: $0.clientPort) }),
            clock: SystemClock())
        defer { client.close() }
        func ask(_ text: String) async throws -> String {
            let answer = String(decoding: try await client.send(Array(text.utf8)), as: UTF8.self)
            print("  \(text)  →  \(answer)")
            return answer
        }
        try expect(await ask("acquire printer alice 300"), "granted")
        try expect(await ask("acquire printer bob 300"), "held by alice")
        try expect(await ask("owner printer"), "alice")
        try await Task.sleep(nanoseconds: 600_000_000)  // the lease's timer fires on the idle cluster
        try expect(await ask("owner printer"), "free")
        try expect(await ask("acquire printer bob 1000"), "granted")
        try expect(await ask("release printer bob"), "released")
        try expect(await ask("acquire"), "error: expected 'acquire LOCK HOLDER TTL_MS', 'release LOCK HOLDER' or 'owner LOCK'")
        print("lease-locks: a 3-member cluster granted, refused, expired and re-granted a lease")
    }

    static func expect(_ answer: String, _ wanted: String) throws {
        guard answer == wanted else { throw ConfigurationError("expected '\(wanted)', got '\(answer)'") }
    }
}
