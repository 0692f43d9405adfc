import Glibc
import KeelClient
import KeelCore
import KeelIO
import Testing

/// The maximum election timeout (DESIGN.md defaults: 300–600 ms); failover is asserted within 10×.
let maxElectionTimeoutNanos: Int64 = 600_000_000

func echoPayload(_ number: Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 16)
    withUnsafeBytes(of: Int64(number).littleEndian) { for index in 0..<8 { bytes[index] = $0[index] } }
    return bytes
}

func makeClient(_ cluster: NodeCluster) -> ClusterClient<SystemClock> {
    var configuration = ClusterClientConfiguration(members: cluster.clientAddresses)
    configuration.failoverTimeoutNanos = 30_000_000_000
    return ClusterClient(configuration: configuration, clock: SystemClock())
}

/// Offers `range` as pipelined requests and polls until each is answered, checking every echo
/// arrives in order with its own payload. `during` runs once per loop (e.g. to kill a node).
func echoAll(
    _ client: ClusterClient<SystemClock>, _ range: Range<Int>, seconds: Int64 = 120, window: Int = 1000, during: (Int) -> Void = { _ in }
) throws -> Int {
    let clock = SystemClock(), deadline = clock.monotonicNanos() + seconds * 1_000_000_000
    var offered = range.lowerBound, answered = range.lowerBound, mismatches = 0
    while answered < range.upperBound && clock.monotonicNanos() < deadline {
        while offered < range.upperBound && offered - answered < window, case .accepted = client.offer(echoPayload(offered)) { offered += 1 }
        try client.poll(waitingUpToNanos: 1_000_000) { response in
            if Array(response.payload) != echoPayload(answered) { mismatches += 1 }
            answered += 1
        }
        during(answered)
    }
    #expect(answered == range.upperBound, "only \(answered - range.lowerBound) of \(range.count) echoes within \(seconds) s")
    return mismatches
}

@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct NodeProcessTests {
    @Test(.timeLimit(.minutes(5)))
    func hundredThousandEchoesArriveInOrder() throws {
        let cluster = try NodeCluster()
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        try client.connect()
        let mismatches = try echoAll(client, 0..<100_000, seconds: 240)
        #expect(mismatches == 0)
        // Every replica reaches the same commit and append positions once the load stops.
        let clock = SystemClock(), deadline = clock.monotonicNanos() + 10_000_000_000
        var commits: [Int64?] = []
        repeat {
            commits = (0..<3).map { cluster.counter($0, .commitPosition) }
            if Set(commits).count == 1, commits[0] ?? 0 > 0 { break }
            usleep(50_000)
        } while clock.monotonicNanos() < deadline
        #expect(Set(commits).count == 1 && (commits[0] ?? 0) > 0, "commit positions \(commits)")
        let appends = (0..<3).map { cluster.counter($0, .appendPosition) }
        #expect(Set(appends).count == 1, "append positions \(appends)")
        client.close()
        // Then, stopped with SIGTERM, the three logs hold the same committed frames.
        let frames = try expectReplicasHoldTheSameCommittedLog(cluster)
        #expect(frames.filter { $0.type == 1 }.count >= 100_000)
    }

    @Test(.timeLimit(.minutes(5)))
    func killingTheLeaderUnderLoadElectsANewOneAndTheClientResumes() throws {
        let cluster = try NodeCluster()
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = makeClient(cluster)
        try client.connect()
        let clock = SystemClock()
        var killed: Int32?
        var killedAtNanos: Int64 = 0
        var failoverNanos: Int64?
        let total = 30_000
        let mismatches = try echoAll(client, 0..<total, seconds: 240, window: 64) { answered in
            if killed == nil && answered >= 10_000, let leader = client.leaderMemberID {
                killed = leader.rawValue
                killedAtNanos = clock.monotonicNanos()
                cluster.kill9(leader.rawValue)
            }
            // The session survives the failover: the client reattaches it to the new leader.
            if killed != nil && failoverNanos == nil && client.sessionsOpened + client.reattachments >= 2 {
                failoverNanos = clock.monotonicNanos() - killedAtNanos
            }
        }
        #expect(mismatches == 0, "echoes out of order or altered")
        guard let killed else { Issue.record("the leader was never killed"); return }
        #expect(client.leaderMemberID != MemberID(killed))
        let failover = try #require(failoverNanos, "no new session after killing leader \(killed)")
        #expect(failover < 10 * maxElectionTimeoutNanos, "failover took \(failover / 1_000_000) ms")

        // The killed node restarts on its directory and catches up with the others: one more echo
        // (committed in the new term), then, with no request in flight, all three members must reach
        // the same commit and append positions. Compare all three with the load stopped: right after
        // an echo the leader's commit position runs ahead of every follower's until its next heartbeat
        // or append carries it, so comparing one follower with a survivor that happens to lead, while
        // still sending, never matches.
        try cluster.start(killed)
        #expect(try echoAll(client, total..<(total + 1), seconds: 10) == 0)
        let leader = try #require(client.leaderMemberID).rawValue
        let target = try #require(cluster.counter(leader, .commitPosition))
        let deadline = clock.monotonicNanos() + 30_000_000_000
        var commits: [Int64?] = [], appends: [Int64?] = []
        var caughtUp = false
        while clock.monotonicNanos() < deadline && !caughtUp {
            commits = (0..<Int32(3)).map { cluster.counter($0, .commitPosition) }
            appends = (0..<Int32(3)).map { cluster.counter($0, .appendPosition) }
            caughtUp = Set(commits).count == 1 && (commits[0] ?? 0) >= target && Set(appends).count == 1
            if !caughtUp { usleep(50_000) }
        }
        #expect(caughtUp, "restarted node \(killed) did not catch up (leader \(leader) at \(target)): commit positions \(commits), append positions \(appends)\n\(cluster.output(killed))")
        #expect(cluster.isRunning(killed))
        client.close()
    }

    /// Garbage and truncated frames on the client and member ports close that connection only; the
    /// nodes keep running and a following good client gets its echo.
    @Test(.timeLimit(.minutes(3)))
    func garbageAndTruncatedFramesCloseOnlyThatConnection() throws {
        let cluster = try NodeCluster()
        defer { cluster.shutdown() }
        try cluster.startAll()
        let warmUp = makeClient(cluster)
        try warmUp.connect()
        warmUp.close()
        var garbage = [UInt8](repeating: 0xEE, count: 64)
        garbage[0] = 64; garbage[1] = 0; garbage[2] = 0; garbage[3] = 0
        // A header that declares 200 bytes, then only 20 of them, then end of stream.
        var truncated = [UInt8](repeating: 0, count: 20)
        truncated[0] = 200; truncated[4] = 1; truncated[5] = 0x07
        for member in cluster.members {
            for port in [member.clientPort, member.memberPort] {
                // A serving leader says a majority listens, not every member (slow starts under load).
                #expect(RawConnection.waitUntilListening(port: port, seconds: 20), "port \(port) never accepted a connection")
                #expect(try RawConnection.sendAndExpectClose(port: port, bytes: garbage), "port \(port) kept a garbage connection open")
                #expect(try RawConnection.sendAndExpectClose(port: port, bytes: truncated, shutdownWrite: true),
                        "port \(port) kept a truncated connection open")
            }
        }
        for member in cluster.members { #expect(cluster.isRunning(member.id), "node \(member.id) died:\n\(cluster.output(member.id))") }
        let client = makeClient(cluster)
        try client.connect()
        #expect(try echoAll(client, 0..<100, seconds: 30) == 0)
        client.close()
    }
}

/// A blocking loopback socket for sending raw bytes.
enum RawConnection {
    /// A blocking TCP connection to 127.0.0.1:`port` whose receives time out after
    /// `receiveTimeoutMillis` (5 s by default).
    static func connectLoopback(port: UInt16, receiveTimeoutMillis: Int = 5_000) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else {
            let failure = errno
            close(descriptor)
            throw HarnessError.spawn("connect to \(port): errno \(failure)")
        }
        var timeout = timeval(tv_sec: receiveTimeoutMillis / 1_000, tv_usec: (receiveTimeoutMillis % 1_000) * 1_000)
        setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        return descriptor
    }

    /// Whether a connection to `port` was accepted within `seconds` (retried while it is refused).
    static func waitUntilListening(port: UInt16, seconds: Int) -> Bool {
        for _ in 0..<(seconds * 10) {
            if let descriptor = try? connectLoopback(port: port) {
                close(descriptor)
                return true
            }
            usleep(100_000)
        }
        return false
    }

    /// Sends `bytes` (then, optionally, ends the stream) and reports whether the peer closed the
    /// connection within 5 s.
    static func sendAndExpectClose(port: UInt16, bytes: [UInt8], shutdownWrite: Bool = false) throws -> Bool {
        let descriptor = try connectLoopback(port: port)
        defer { close(descriptor) }
        _ = bytes.withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if shutdownWrite { shutdown(descriptor, Int32(SHUT_WR)) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let received = recv(descriptor, &buffer, buffer.count, 0)
            if received == 0 { return true }
            if received < 0 { return errno == ECONNRESET }
            // Anything the node sent before closing (e.g. a refusal) is fine; keep reading.
        }
    }
}
