import Glibc
import KeelCore
import KeelExamples
import KeelLocalCluster
import KeelNode
import KeelService
import KeelWire
import Testing

/// Adaptive threading (`ClusterNode.Threading.adaptive`): the service agent moves between the
/// consensus thread and its own while requests flow, and no request is lost, doubled or reordered.
/// Three `ClusterNode`s in this process, real io_uring and TCP on loopback.
@Suite(.serialized)
struct AdaptiveThreadingTests {
    @Test(.timeLimit(.minutes(2)))
    func serviceAgentMovesBackAndForthUnderTrafficWithoutLosingARequest() throws {
        let root = try LocalFiles.makeTemporaryDirectory(prefix: "/tmp/keel-adaptive")
        defer { LocalFiles.removeTree(root) }
        let ports = try LocalFiles.freePorts(6)
        let endpoints = (0..<3).map { MemberEndpoint(id: MemberID(Int32($0)), host: "127.0.0.1", memberPort: ports[2 * $0], clientPort: ports[2 * $0 + 1]) }
        // Rules that move the agent every few milliseconds whatever the load: out after two 1 ms
        // windows on the consensus thread, back after one on its own.
        var rules = AdaptiveThreading()
        rules.windowNanos = 1_000_000
        rules.moveOutLoad = 0
        rules.moveOutWindows = 2
        rules.moveInLoad = 2
        rules.moveInWindows = 1
        rules.entriesPerCycleOnConsensusThread = 3
        var nodes: [ClusterNode<EchoService>] = []
        defer { for node in nodes { try? node.stop() } }
        for endpoint in endpoints {
            let directory = "\(root)/\(endpoint.id.rawValue)"
            mkdir(directory, 0o755)
            var configuration = try ClusterConfiguration(clusterName: "adaptive", members: endpoints, selfID: endpoint.id, durability: .replicated)
            configuration.snapshotIntervalBytes = 16 << 10
            let node = try ClusterNode(configuration: configuration, directory: directory, service: EchoService(), threading: .adaptive(rules))
            try node.start()
            nodes.append(node)
        }
        let client = WireSessionClient(clientPorts: endpoints.map(\.clientPort))
        #expect(try client.attach() == .attached)
        // Bursts of requests with pauses between them, so that both placements see work.
        var sequence: Int64 = 0
        for burst in 0..<60 {
            let count = burst % 3 == 0 ? 40 : 4
            var sent: [Int64: [UInt8]] = [:]
            for _ in 0..<count {
                sequence += 1
                let payload = Array("request \(sequence) of burst \(burst)".utf8)
                sent[sequence] = payload
                client.sendRequest(sequence: sequence, payload: payload)
            }
            for expected in (sequence - Int64(count) + 1)...sequence {
                let answer = client.next(timeoutNanos: 10_000_000_000)
                #expect(answer == .response(sequence: expected, payload: sent[expected]!, resent: false))
                if answer != .response(sequence: expected, payload: sent[expected]!, resent: false) { return }
            }
            var pause = timespec(tv_sec: 0, tv_nsec: 3_000_000)
            nanosleep(&pause, nil)
        }
        let leaderMoves = nodes.map(\.serviceAgentMoves)
        #expect(leaderMoves.allSatisfy { $0.toOwnThread > 0 && $0.toConsensusThread > 0 }, "moves per node: \(leaderMoves)")
        // Every member applied every request (and took its snapshots on the service thread).
        let deadline = SystemClock().monotonicNanos() + 10_000_000_000
        while nodes.contains(where: { $0.shared.messagesApplied.load(ordering: .relaxed) < sequence }), SystemClock().monotonicNanos() < deadline {
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
        }
        #expect(nodes.map { $0.shared.messagesApplied.load(ordering: .relaxed) } == [sequence, sequence, sequence])
        #expect(nodes.allSatisfy { $0.shared.snapshotsTaken.load(ordering: .relaxed) > 0 && $0.shared.snapshotsFailed.load(ordering: .relaxed) == 0 })
        for node in nodes { #expect(node.failure == nil) }
        for node in nodes { try node.stop() }
        nodes.removeAll()
    }
}
