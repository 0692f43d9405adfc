import Glibc
import KeelCore
import KeelLocalCluster
import KeelNode
import KeelService
import KeelWire
import Testing

/// Echoes every message; after answering "bye" it closes the session (`ClientSession.close`).
struct ClosingEchoService: ClusteredService {
    var cluster: Cluster?
    mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws { self.cluster = cluster }
    mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {}
    mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        session.offer(message)
        if Array(message) == Array("bye".utf8) { _ = cluster?.closeSession(id: session.id) }
    }
    mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {}
    mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {}
}

/// The service closes a session (issue 8 §2): three `ClusterNode`s of a test service in this
/// process, real io_uring and TCP on loopback.
@Suite(.serialized)
struct ServiceCloseTests {
    @Test(.timeLimit(.minutes(2)))
    func serviceCloseEndsTheSessionWithReasonService() throws {
        let root = try LocalFiles.makeTemporaryDirectory(prefix: "/tmp/keel-service-close")
        defer { LocalFiles.removeTree(root) }
        let ports = try LocalFiles.freePorts(6)
        let endpoints = (0..<3).map { MemberEndpoint(id: MemberID(Int32($0)), host: "127.0.0.1", memberPort: ports[2 * $0], clientPort: ports[2 * $0 + 1]) }
        var nodes: [ClusterNode<ClosingEchoService>] = []
        defer { for node in nodes { try? node.stop() } }
        for endpoint in endpoints {
            let directory = "\(root)/\(endpoint.id.rawValue)"
            mkdir(directory, 0o755)
            let configuration = try ClusterConfiguration(clusterName: "service-close", members: endpoints, selfID: endpoint.id, durability: .durable)
            let node = try ClusterNode(configuration: configuration, directory: directory, service: ClosingEchoService())
            try node.start()
            nodes.append(node)
        }
        let client = WireSessionClient(clientPorts: endpoints.map(\.clientPort))
        #expect(try client.attach() == .attached)
        client.sendRequest(sequence: 1, payload: Array("hello".utf8))
        #expect(client.next(timeoutNanos: 10_000_000_000) == .response(sequence: 1, payload: Array("hello".utf8), resent: false))
        client.sendRequest(sequence: 2, payload: Array("bye".utf8))
        #expect(client.next(timeoutNanos: 10_000_000_000) == .response(sequence: 2, payload: Array("bye".utf8), resent: false))
        #expect(client.next(timeoutNanos: 10_000_000_000) == .sessionClosed(.closedByService))
        if case .rejected(let reason, _) = try client.attach() {
            #expect(reason == .sessionNotOpen)
        } else {
            Issue.record("a session the service closed was reattached")
        }
        for node in nodes { #expect(node.failure == nil) }
    }
}
