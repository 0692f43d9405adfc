import KeelCore
import KeelPOSIX
import KeelWire
import Testing
@testable import KeelClient

/// Monotonic time from the standard library (the client tests do not link KeelIO's SystemClock).
struct TestClock: Clock {
    private let origin = ContinuousClock.now
    func monotonicNanos() -> Int64 {
        let elapsed = ContinuousClock.now - origin
        return elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000
    }
    /// Not epoch time: the client never reads it.
    func epochNanos() -> Int64 { monotonicNanos() }
}

func address(_ member: FakeMember, id: Int32) -> ClusterMemberAddress {
    ClusterMemberAddress(id: MemberID(id), host: "127.0.0.1", clientPort: member.port)
}

func payload(_ number: Int) -> [UInt8] { Array("message \(number)".utf8) }

/// Polls the client and pumps the members until `done` or `seconds` pass; returns whether done.
@discardableResult
func run(
    _ client: ClusterClient<TestClock>, _ members: [FakeMember], seconds: Double = 10,
    onResponse: (ClusterResponse) -> Void = { _ in }, until done: () -> Bool
) throws -> Bool {
    let clock = TestClock()
    let deadline = clock.monotonicNanos() + Int64(seconds * 1e9)
    while !done() {
        if clock.monotonicNanos() > deadline { return false }
        for member in members { member.pump() }
        try client.poll(waitingUpToNanos: 200_000, onResponse)
    }
    return true
}

@Suite(.serialized) struct ClusterClientTests {
    @Test(.timeLimit(.minutes(1)))
    func followsRedirectOpensSessionAndEchoesInOrder() throws {
        let leader = try FakeMember(.lead(MemberID(1), Term(3)), firstSessionID: 40)
        let follower = try FakeMember(.redirect(MemberID(1), host: "127.0.0.1", port: leader.port))
        let client = ClusterClient(
            configuration: ClusterClientConfiguration(members: [address(follower, id: 0), address(leader, id: 1)]), clock: TestClock())
        try run(client, [leader, follower]) { client.state == .open }
        #expect(client.sessionID == 40)
        #expect(client.leaderMemberID == MemberID(1) && client.leaderTerm == Term(3))
        #expect(follower.connectsSeen == 1 && leader.connectsSeen == 1)

        let total = 2000
        var responses: [(Int64, [UInt8])] = []
        var offered = 0
        try run(client, [leader, follower], onResponse: { responses.append(($0.requestID, Array($0.payload))) }) {
            while offered < total, case .accepted = client.offer(payload(offered)) { offered += 1 }
            return responses.count == total
        }
        #expect(responses.count == total)
        for (index, response) in responses.enumerated() {
            #expect(response.0 == Int64(index + 1) && response.1 == payload(index))
        }
        #expect(leader.received.map(\.sequence) == (1...total).map(Int64.init))
        #expect(leader.received.allSatisfy { $0.sessionID == 40 })
        #expect(client.outstandingCount == 0 && client.sessionsOpened == 1)
    }

    /// The leader drops every connection on the 50th request (before answering it) and then only
    /// says "no leader"; the next member leads. The client reattaches the same session there and
    /// re-sends everything unacknowledged with its original sequence; every request gets exactly
    /// one response, in order.
    @Test(.timeLimit(.minutes(1)))
    func failoverReattachesTheSessionAndResendsWithOriginalSequences() throws {
        let first = try FakeMember(.lead(MemberID(0), Term(1)), firstSessionID: 1)
        let second = try FakeMember(.lead(MemberID(1), Term(2)), firstSessionID: 100)
        first.dropAfterRequests = 50
        var configuration = ClusterClientConfiguration(members: [address(first, id: 0), address(second, id: 1)])
        configuration.retryDelayNanos = 10_000_000
        let client = ClusterClient(configuration: configuration, clock: TestClock())
        let total = 300
        var responses: [Int64] = []
        var payloads: [[UInt8]] = []
        var offered = 0
        try run(client, [first, second], onResponse: { responses.append($0.requestID); payloads.append(Array($0.payload)) }) {
            while offered < total, case .accepted = client.offer(payload(offered)) { offered += 1 }
            return responses.count == total
        }
        #expect(responses == (1...Int64(total)).map { $0 })
        #expect(payloads == (0..<total).map(payload))
        #expect(client.sessionsOpened == 1 && client.reattachments == 1 && client.sessionID == 1 && client.leaderMemberID == MemberID(1))
        #expect(second.reattachesSeen == 1 && second.received.allSatisfy { $0.sessionID == 1 })
        let answeredByFirst = first.received.count - 1
        // The second leader saw exactly the unanswered requests, with their original sequences.
        #expect(second.received.map(\.payload) == (answeredByFirst..<total).map(payload))
        #expect(second.received.map(\.sequence) == (Int64(answeredByFirst + 1)...Int64(total)).map { $0 })
        #expect(client.requestsResent >= 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func backPressureWhenOutstandingRequestsAreFull() throws {
        let leader = try FakeMember(.silentLead(MemberID(0), Term(1)))
        var configuration = ClusterClientConfiguration(members: [address(leader, id: 0)])
        configuration.maxOutstandingRequests = 8
        let client = ClusterClient(configuration: configuration, clock: TestClock())
        try run(client, [leader]) { client.state == .open }
        for index in 0..<8 { #expect(client.offer(payload(index)) == .accepted(requestID: Int64(index + 1))) }
        #expect(client.offer(payload(8)) == .backPressured)
        #expect(client.outstandingCount == 8)
        try run(client, [leader]) { leader.received.count == 8 }
        #expect(client.offer(payload(9)) == .backPressured)

        var small = ClusterClientConfiguration(members: [address(leader, id: 0)])
        small.outstandingBytesMax = 256
        let byteLimited = ClusterClient(configuration: small, clock: TestClock())
        #expect(byteLimited.offer([UInt8](repeating: 1, count: 300)) == .tooLarge)
        #expect(byteLimited.offer([UInt8](repeating: 1, count: 100)) == .accepted(requestID: 1))
        #expect(byteLimited.offer([UInt8](repeating: 1, count: 100)) == .accepted(requestID: 2))
        #expect(byteLimited.offer([UInt8](repeating: 1, count: 100)) == .backPressured)
    }

    /// A leader that stays silent with requests unanswered counts as lost after the response timeout.
    @Test(.timeLimit(.minutes(1)))
    func silentLeaderCountsAsLostAfterResponseTimeout() throws {
        let silent = try FakeMember(.silentLead(MemberID(0), Term(1)))
        let healthy = try FakeMember(.lead(MemberID(1), Term(2)), firstSessionID: 7)
        var configuration = ClusterClientConfiguration(members: [address(silent, id: 0), address(healthy, id: 1)])
        configuration.responseTimeoutNanos = 200_000_000
        let client = ClusterClient(configuration: configuration, clock: TestClock())
        var answer: [UInt8]?
        _ = client.offer(payload(1))
        try run(client, [silent, healthy], onResponse: { answer = Array($0.payload) }) { answer != nil }
        #expect(answer == payload(1))
        #expect(silent.received.count == 1 && healthy.received.count == 1)
        #expect(client.sessionsOpened == 1 && client.reattachments == 1 && client.sessionID == 1 && healthy.reattachesSeen == 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func noLeaderFailsWithAClearErrorAfterTheFailoverTimeout() throws {
        // A port nothing listens on: bind one, note it, close it.
        let probe = PosixTransport()
        let listener = try probe.listen(host: "127.0.0.1", port: 0)
        let deadPort = try probe.localPort(listener)
        probe.close(listener)
        let refusing = try FakeMember(.reject(.noLeader))
        var configuration = ClusterClientConfiguration(members: [
            ClusterMemberAddress(id: MemberID(0), host: "127.0.0.1", clientPort: deadPort), address(refusing, id: 1),
        ])
        configuration.failoverTimeoutNanos = 300_000_000
        configuration.retryDelayNanos = 20_000_000
        let client = ClusterClient(configuration: configuration, clock: TestClock())
        var caught: ClusterClientError?
        do {
            try run(client, [refusing]) { false }
        } catch {
            caught = error as? ClusterClientError
        }
        guard case .noLeader(let waited, let problem) = caught else {
            Issue.record("expected noLeader, got \(String(describing: caught))")
            return
        }
        #expect(waited >= 300_000_000)
        #expect(problem.contains("connection refused") || problem.contains("no leader known"))
        #expect(refusing.connectsSeen >= 2)
        #expect(client.state == .closed && client.offer(payload(0)) == .closed)
    }

    @Test(.timeLimit(.minutes(1)))
    func authenticationRejectionIsFatal() throws {
        let member = try FakeMember(.reject(.authenticationFailed))
        let client = ClusterClient(configuration: ClusterClientConfiguration(members: [address(member, id: 0)]), clock: TestClock())
        var caught: ClusterClientError?
        do { try run(client, [member]) { false } } catch { caught = error as? ClusterClientError }
        #expect(caught == .rejected(.authenticationFailed, detail: "test refusal"))
        #expect(member.connectsSeen == 1)
    }

    @Test(.timeLimit(.minutes(1)))
    func garbageFromAMemberDropsItAndTheNextMemberServes() throws {
        let broken = try FakeMember(.garbage)
        let leader = try FakeMember(.lead(MemberID(1), Term(1)))
        let client = ClusterClient(
            configuration: ClusterClientConfiguration(members: [address(broken, id: 0), address(leader, id: 1)]), clock: TestClock())
        try run(client, [broken, leader]) { client.state == .open }
        #expect(broken.connectsSeen == 1 && client.leaderMemberID == MemberID(1))
        try run(client, [broken, leader]) { broken.openConnections == 0 }
        #expect(broken.openConnections == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func keepAlivesFlowWhileIdleAndCloseEndsTheSession() throws {
        let leader = try FakeMember(.lead(MemberID(0), Term(1)))
        var configuration = ClusterClientConfiguration(members: [address(leader, id: 0)])
        configuration.keepAliveIntervalNanos = 30_000_000
        let client = ClusterClient(configuration: configuration, clock: TestClock())
        try run(client, [leader]) { client.state == .open }
        try run(client, [leader]) { leader.keepAlivesSeen >= 3 }
        #expect(leader.keepAlivesSeen >= 3)
        client.close(lingerNanos: 100_000_000)
        for _ in 0..<50 { leader.pump() }
        #expect(leader.closesSeen == 1)
        #expect(client.state == .closed && client.failure == .closed)
        #expect(client.offer(payload(0)) == .closed)
    }

    /// A suspended cluster refuses requests (retryable) and resumes at once: the requests the
    /// client had sent after a refused one reach a cluster that expects the refused one first and
    /// are rejected as out of order. The client must not stop: it re-sends from the refused one,
    /// in order, and every request is applied once and answered once, in order.
    @Test(.timeLimit(.minutes(1)), arguments: [1, 7])
    func refusedWhileSuspendedResendsInOrderAndClosesTheGap(refused: Int) throws {
        let leader = try FakeMember(.lead(MemberID(0), Term(1)), firstSessionID: 5)
        leader.checksSequences = true
        var configuration = ClusterClientConfiguration(members: [address(leader, id: 0)])
        configuration.retryDelayNanos = 20_000_000
        let client = ClusterClient(configuration: configuration, clock: TestClock())
        try run(client, [leader]) { client.state == .open }
        leader.refuseRequests = refused
        let total = 200
        var responses: [Int64] = []
        var offered = 0
        let done = try run(client, [leader], onResponse: { responses.append($0.requestID) }) {
            while offered < total, case .accepted = client.offer(payload(offered)) { offered += 1 }
            return responses.count == total
        }
        #expect(done, "\(responses.count) of \(total) answered; failure \(String(describing: client.failure))")
        #expect(client.failure == nil)
        #expect(responses == (1...Int64(total)).map { $0 }, "answers missing, repeated or out of order")
        #expect(client.requestsRefused == refused)
        #expect(leader.expectedSequence[5] == Int64(total + 1), "the leader applied up to \(String(describing: leader.expectedSequence[5]))")
        // Each sequence was applied once: the first time it arrived in order.
        var applied: [Int64] = []
        var next: Int64 = 1
        for request in leader.received.dropFirst(refused) where request.sequence == next {
            applied.append(request.sequence)
            next += 1
        }
        #expect(applied.count == total)
    }

    @Test func memberListParsesTheNodeFormat() {
        let members = ClusterMemberAddress.parseMemberList("0=127.0.0.1:9010:9020,1=127.0.0.1:9011:9021,2=10.0.0.3:9012:9022")
        #expect(members == [
            ClusterMemberAddress(id: MemberID(0), host: "127.0.0.1", clientPort: 9020),
            ClusterMemberAddress(id: MemberID(1), host: "127.0.0.1", clientPort: 9021),
            ClusterMemberAddress(id: MemberID(2), host: "10.0.0.3", clientPort: 9022),
        ])
        #expect(ClusterMemberAddress.parseMemberList("0=127.0.0.1:9010") == nil)
        #expect(ClusterMemberAddress.parseMemberList("0=h:1:2,0=h:3:4") == nil)
        #expect(ClusterMemberAddress.parseMemberList("x=h:1:2") == nil)
        #expect(ClusterMemberAddress.parseMemberList("") == nil)
    }
}
