import Glibc
import KeelClient
import KeelCore
import KeelIO
import KeelPOSIX
import Testing

/// Three `keel node` processes whose member links each run through their own `FaultProxy`: member i
/// connects to member j (i < j; the lower id always dials) at the proxy of link (i, j) (`--route`),
/// which forwards to j's member port and carries both directions of that one connection. The
/// member list, and so the configuration digest, is the same on every node.
final class ProxiedLinks {
    /// The proxy of each link, keyed by the link's two member ids, lower first.
    private(set) var proxies: [[Int32]: FaultProxy] = [:]

    /// Makes a proxy per link and routes each node's outbound member connections through them.
    init(_ cluster: NodeCluster) throws {
        for lower in cluster.members {
            for higher in cluster.members where higher.id > lower.id {
                let proxy = try FaultProxy(listen: FaultProxyEndpoint(host: "127.0.0.1", port: 0),
                                           target: FaultProxyEndpoint(host: "127.0.0.1", port: higher.memberPort))
                proxies[[lower.id, higher.id]] = proxy
                cluster.extraArguments[lower.id, default: []] += ["--route", "\(higher.id)=127.0.0.1:\(proxy.listenEndpoint.port)"]
            }
        }
    }

    /// The proxies of every link that touches `member`.
    func links(of member: Int32) -> [FaultProxy] {
        proxies.filter { $0.key.contains(member) }.map(\.value)
    }

    /// Applies `command` to every link of `member`; false if any proxy did not take it.
    func apply(_ command: FaultProxyCommand, toLinksOf member: Int32) -> Bool {
        links(of: member).allSatisfy { $0.apply(command) }
    }

    func stopAll() {
        for proxy in proxies.values { proxy.stop() }
    }

    deinit { stopAll() }
}

/// Polls `condition` every 20 ms until it holds or `timeoutNanos` pass; the elapsed time when it
/// held, or nil.
func waitFor(timeoutNanos: Int64, _ condition: () -> Bool) -> Int64? {
    let clock = SystemClock(), start = clock.monotonicNanos()
    while true {
        if condition() { return clock.monotonicNanos() - start }
        if clock.monotonicNanos() - start > timeoutNanos { return nil }
        usleep(20_000)
    }
}

@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct NodePartitionTests {
    /// Isolating the leader's links (bytes dropped, connections kept) makes it step down by
    /// check-quorum while the other two elect a leader in a higher term that serves the client;
    /// after healing, the old leader follows and every member reaches the same positions.
    @Test(.timeLimit(.minutes(4)))
    func anIsolatedLeaderStepsDownAndRejoinsAsAFollower() throws {
        let cluster = try NodeCluster()
        let links = try ProxiedLinks(cluster)
        defer {
            cluster.shutdown()
            links.stopAll()
        }
        try cluster.startAll()
        let client = makeClient(cluster)
        defer { client.close() }
        try client.connect()
        #expect(try echoAll(client, 0..<1_000, seconds: 60) == 0)
        // Every member link really runs through its proxy. A link can still be coming up (a dial
        // that reached the proxy before its target listened is retried), so wait for all three.
        let linked = waitFor(timeoutNanos: 10_000_000_000) {
            links.proxies.values.allSatisfy {
                let statistics = $0.statistics
                return statistics.connectionsOpen == 1 && statistics.bytesForwardedToTarget > 0 && statistics.bytesForwardedToClient > 0
            }
        }
        #expect(linked != nil, "not every member link came up through its proxy")
        for (link, proxy) in links.proxies {
            let statistics = proxy.statistics
            #expect(statistics.bytesForwardedToTarget > 0 && statistics.bytesForwardedToClient > 0, "link \(link) carried nothing: \(statistics)\n\(cluster.output(link[0]))\n\(cluster.output(link[1]))")
        }

        let leader = try #require(client.leaderMemberID).rawValue
        let others = cluster.members.map(\.id).filter { $0 != leader }
        let oldTerm = try #require(cluster.counter(leader, .term))
        #expect(cluster.counter(leader, .role) == RoleCounterValue.leader.rawValue)
        #expect(links.apply(.set(.drop), toLinksOf: leader))

        let bound = 10 * maxElectionTimeoutNanos
        let steppedDown = waitFor(timeoutNanos: bound) { cluster.counter(leader, .role) != RoleCounterValue.leader.rawValue }
        #expect(steppedDown != nil, "isolated leader \(leader) still leads after \(bound / 1_000_000) ms:\n\(cluster.output(leader))")
        var newLeader: Int32?
        let elected = waitFor(timeoutNanos: bound) {
            newLeader = others.first { cluster.counter($0, .role) == RoleCounterValue.leader.rawValue && (cluster.counter($0, .term) ?? 0) > oldTerm }
            return newLeader != nil
        }
        #expect(elected != nil, "no new leader among \(others) in a term above \(oldTerm)")
        let successor = try #require(newLeader)

        // The client follows the new leader and gets its echoes while the old leader is cut off.
        #expect(try echoAll(client, 1_000..<2_000, seconds: 60) == 0)
        #expect(client.leaderMemberID == MemberID(successor))
        print("partition: leader \(leader) (term \(oldTerm)) stepped down after \((steppedDown ?? -1) / 1_000_000) ms; member \(successor) led in term \(cluster.counter(successor, .term) ?? -1) after \((elected ?? -1) / 1_000_000) ms more")
        let dropped = links.links(of: leader).reduce(Int64(0)) { $0 + $1.statistics.bytesDroppedToTarget + $1.statistics.bytesDroppedToClient }
        #expect(dropped > 0, "the isolated leader's links dropped nothing")

        // Heal: forward again and cut the connections whose streams now have holes, so they are
        // re-established cleanly.
        #expect(links.apply(.set(.pass), toLinksOf: leader))
        #expect(links.apply(.cut, toLinksOf: leader))
        #expect(try echoAll(client, 2_000..<2_001, seconds: 30) == 0)
        let newTerm = try #require(cluster.counter(successor, .term))
        var commits: [Int64?] = [], appends: [Int64?] = [], roles: [Int64?] = []
        let converged = waitFor(timeoutNanos: 30_000_000_000) {
            commits = (0..<Int32(3)).map { cluster.counter($0, .commitPosition) }
            appends = (0..<Int32(3)).map { cluster.counter($0, .appendPosition) }
            roles = (0..<Int32(3)).map { cluster.counter($0, .role) }
            return Set(commits).count == 1 && Set(appends).count == 1 && (commits[0] ?? 0) > 0
                && roles[Int(leader)] == RoleCounterValue.follower.rawValue && cluster.counter(leader, .term) == newTerm
        }
        #expect(converged != nil, """
            old leader \(leader) did not rejoin as follower in term \(newTerm): roles \(roles), commit positions \(commits), \
            append positions \(appends)\n\(cluster.output(leader))
            """)
        #expect(cluster.counter(successor, .role) == RoleCounterValue.leader.rawValue)
        for member in cluster.members { #expect(cluster.isRunning(member.id), "node \(member.id) died:\n\(cluster.output(member.id))") }
    }
}
