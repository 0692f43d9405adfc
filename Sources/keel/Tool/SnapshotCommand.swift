import ArgumentParser
import KeelClient
import KeelCore
import KeelIO
import KeelRuntime
import KeelWire

/// `keel tool snapshot --members …`: asks the running cluster's leader to take a snapshot (an admin
/// request; the node must let this client's principal administer). Every member snapshots when it
/// applies the marker the leader appends.
struct SnapshotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "snapshot",
        abstract: "Ask a running cluster to take a snapshot on every member.",
        discussion: """
            Connects to the members' client ports, finds the leader, opens a session (with \
            --credentials when the nodes run with --secret-file) and sends a take-snapshot admin request. \
            The leader appends a snapshot marker; each member writes its snapshot into DIR/archive when \
            its service applies it (see `keel stat`, or the node's output). Exit status: 0 the leader \
            accepted; 1 the cluster could not be reached or refused (not authorised, …); 2 bad arguments.
            """
    )

    @Option(name: .customLong("members"), help: "Client addresses: 0=127.0.0.1:9020,1=…, or the node form 0=HOST:MEMBER_PORT:CLIENT_PORT,…")
    var members: String

    @Option(name: .customLong("credentials"), help: "NAME:SECRET, as the nodes' --secret-file and --admin expect.")
    var credentials: String?

    @Option(name: .customLong("timeout-ms"), help: "Give up after this long.")
    var timeoutMillis: Int64 = 15_000

    func run() throws {
        let addresses: [ClusterMemberAddress]
        do { addresses = try Self.parseMembers(members) } catch {
            printToStandardError("keel tool snapshot: \(error)")
            throw ExitCode(2)
        }
        var configuration = ClusterClientConfiguration(members: addresses, credentials: Array((credentials ?? "").utf8))
        configuration.failoverTimeoutNanos = timeoutMillis * 1_000_000
        let clock = SystemClock()
        let client = ClusterClient(configuration: configuration, clock: clock)
        defer { client.close() }
        let deadline = clock.monotonicNanos() + timeoutMillis * 1_000_000
        var sent = false
        while clock.monotonicNanos() < deadline {
            do { _ = try client.poll(waitingUpToNanos: 10_000_000) { _ in } } catch {
                printToStandardError("keel tool snapshot: \(error)")
                throw ExitCode(1)
            }
            if !sent && client.state == .open { sent = client.sendAdmin(.takeSnapshot, correlationID: 1) }
            if let answer = client.adminResponses.first {
                guard answer.status == .ok else {
                    printToStandardError("keel tool snapshot: the leader answered \(answer.status)\(answer.text.isEmpty ? "" : ": \(answer.text)")")
                    throw ExitCode(1)
                }
                print("leader \(client.leaderMemberID.map { "\($0.rawValue)" } ?? "?"): \(answer.text)")
                return
            }
        }
        printToStandardError("keel tool snapshot: no answer within \(timeoutMillis) ms (state \(client.state))")
        throw ExitCode(1)
    }

    /// `ID=HOST:CLIENT_PORT` or the node's `ID=HOST:MEMBER_PORT:CLIENT_PORT`, comma-separated.
    static func parseMembers(_ text: String) throws(ConfigurationError) -> [ClusterMemberAddress] {
        var result: [ClusterMemberAddress] = []
        for item in text.split(separator: ",") {
            let parts = item.split(separator: "=", maxSplits: 1)
            let address = parts.count == 2 ? parts[1].split(separator: ":") : []
            guard parts.count == 2, let id = Int32(parts[0]), address.count == 2 || address.count == 3,
                  let port = UInt16(address[address.count - 1]), port > 0
            else { throw ConfigurationError("bad member '\(item)': expected ID=HOST:CLIENT_PORT or ID=HOST:MEMBER_PORT:CLIENT_PORT") }
            result.append(ClusterMemberAddress(id: MemberID(id), host: String(address[0]), clientPort: port))
        }
        guard !result.isEmpty else { throw ConfigurationError("the member list is empty") }
        return result
    }
}
