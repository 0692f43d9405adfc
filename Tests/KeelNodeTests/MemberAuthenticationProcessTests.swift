import Glibc
import KeelClient
import KeelCore
import KeelIO
import KeelLocalCluster
import Testing

/// `keel node --cluster-secret-file` (issue 8 §2) with real processes: three members with the
/// secret elect and serve; a fourth process claiming member id 3 with a wrong secret is refused by
/// each of them, logged with its address and id, and the cluster keeps serving.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct MemberAuthenticationProcessTests {
    @Test(.timeLimit(.minutes(3)))
    func membersWithTheSecretServeAndAnImpostorIsRefused() throws {
        let cluster = try NodeCluster(size: 4)
        defer { cluster.shutdown() }
        let good = "\(cluster.root)/cluster.secret", wrong = "\(cluster.root)/wrong.secret"
        try write("the cluster's secret\n", to: good)
        try write("not the cluster's secret\n", to: wrong)
        for id: Int32 in 0..<3 { cluster.extraArguments[id] = ["--cluster-secret-file", good] }
        cluster.extraArguments[3] = ["--cluster-secret-file", wrong]
        // Three of four members are a majority: they elect and serve on their own.
        for id: Int32 in 0..<3 { try cluster.start(id) }
        var configuration = ClusterClientConfiguration(members: Array(cluster.clientAddresses.prefix(3)))
        configuration.failoverTimeoutNanos = 30_000_000_000
        let client = ClusterClient(configuration: configuration, clock: SystemClock())
        try client.connect()
        #expect(try echoAll(client, 0..<500, seconds: 60) == 0)

        try cluster.start(3)
        let clock = SystemClock(), deadline = clock.monotonicNanos() + 30_000_000_000
        var refusing: [Int32] = []
        while clock.monotonicNanos() < deadline {
            refusing = (0..<3).filter { cluster.output($0, lastBytes: 20_000).contains("refused member 3 at 127.0.0.1:\(cluster.members[3].memberPort)") }
            if refusing.count == 3 { break }
            usleep(100_000)
        }
        #expect(refusing == [0, 1, 2], "members refusing the impostor: \(refusing)\n\(cluster.output(0))")
        #expect(cluster.output(0, lastBytes: 20_000).contains("proof does not match"), "\(cluster.output(0))")
        #expect(cluster.output(3, lastBytes: 20_000).contains("cluster secret"), "the impostor does not say why:\n\(cluster.output(3))")

        // The cluster carries on serving, and the impostor got nothing of the log.
        #expect(try echoAll(client, 500..<1_000, seconds: 60) == 0)
        for id: Int32 in 0..<4 { #expect(cluster.isRunning(id), "member \(id) died:\n\(cluster.output(id))") }
        #expect((cluster.counters(3)?.commitPosition ?? 0) == 0)
        #expect((cluster.counter(0, .handshakesRefused) ?? 0) >= 1)
        client.close()
    }

    private func write(_ text: String, to path: String) throws {
        guard let file = fopen(path, "wb") else { throw HarnessError.spawn("cannot write \(path)") }
        defer { fclose(file) }
        _ = Array(text.utf8).withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
    }
}
