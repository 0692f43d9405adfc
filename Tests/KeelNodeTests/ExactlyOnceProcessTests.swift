import Glibc
import KeelCore
import KeelExamples
import KeelWire
import Testing

/// How the test's client misbehaves with every request.
enum RetryingClientKind: String, CustomTestStringConvertible, Sendable {
    /// Sends every request frame twice in a row (same session, same sequence).
    case resendsEveryRequest
    /// Cuts its connection right after sending each request, then reattaches and sends it again.
    case cutsAfterEverySend

    var testDescription: String { rawValue }
}

/// Exactly-once through real `keel node --service bank` processes (issue 8 §4, §6): a client that
/// retries every request, through repeated `kill -9` of the leader. Every response is compared
/// with a local `BankService` model that applied each request exactly once, in order: an extra
/// application of a deposit, withdrawal or transfer would change a balance the model predicts.
/// The service produces a fresh (not re-sent) response at most once per request.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct ExactlyOnceProcessTests {
    static let requestCount: Int64 = 120
    static let leaderKills = 3

    /// The bank requests sent, in order: three accounts opened and funded, then deposits,
    /// withdrawals and transfers among them (none refused for lack of money, so each changes a
    /// balance).
    static func request(_ sequence: Int64) -> BankRequest {
        if sequence <= 3 { return .open(account: sequence) }
        if sequence <= 6 { return .deposit(account: sequence - 3, amount: 1_000) }
        let account = sequence % 3 + 1
        switch sequence % 4 {
        case 0: return .deposit(account: account, amount: sequence)
        case 1: return .transfer(from: account, to: account % 3 + 1, amount: 1)
        case 2: return .deposit(account: account, amount: 7)
        default: return .withdraw(account: account, amount: 2)
        }
    }

    @Test(.timeLimit(.minutes(3)), arguments: [RetryingClientKind.resendsEveryRequest, .cutsAfterEverySend])
    func everyRequestIsAppliedOnceThroughLeaderKills(_ kind: RetryingClientKind) throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = WireSessionClient(clientPorts: cluster.clientPorts)
        #expect(try client.attach() == .attached)

        var model = BankService()
        var expected: [Int64: [UInt8]] = [:]
        var freshResponses: [Int64: Int] = [:]
        var kills = 0, reattaches = 0
        let killEvery = Self.requestCount / Int64(Self.leaderKills + 1)
        for sequence in 1...Self.requestCount {
            let request = Self.request(sequence)
            let answer = model.apply(request, at: .zero)
            #expect(answer.status == .ok, "the model refused request \(sequence): \(request)")
            expected[sequence] = answer.encoded()
            let copies = kind == .resendsEveryRequest ? 2 : 1
            var killDue = sequence % killEvery == 0 && kills < Self.leaderKills
            var answered = 0
            var attempts = 0
            while answered < copies {
                attempts += 1
                try #require(attempts <= 20, "request \(sequence) unanswered after 20 attempts")
                if !client.isConnected || kind == .cutsAfterEverySend && attempts > 1 {
                    #expect(try client.attach() == .attached)
                    reattaches += 1
                }
                client.sendRequest(sequence: sequence, payload: request.encoded(), copies: copies)
                if kind == .cutsAfterEverySend && attempts == 1 {
                    client.cut()
                    continue
                }
                if killDue, let leader = cluster.leader() {
                    // In flight to the leader as it dies: appended, committed, applied or none of them.
                    cluster.kill9(leader)
                    try cluster.start(leader)
                    kills += 1
                    killDue = false
                }
                // Wait for this request's responses on this connection; earlier ones may come too.
                answered = 0
                while answered < copies, let inbound = client.next(timeoutNanos: 2_000_000_000) {
                    guard case .response(let answeredSequence, let payload, let resent) = inbound else {
                        Issue.record("request \(sequence): unexpected \(inbound)")
                        continue
                    }
                    #expect(payload == expected[answeredSequence], "request \(answeredSequence): response \(payload), the model (applied once) says \(expected[answeredSequence] ?? [])")
                    if !resent { freshResponses[answeredSequence, default: 0] += 1 }
                    if answeredSequence == sequence { answered += 1 }
                }
                if answered < copies { client.cut() }  // silent or gone: reattach (perhaps to a new leader) and send again
            }
        }
        #expect(kills == Self.leaderKills)
        let twice = freshResponses.filter { $0.value > 1 }.keys.sorted()
        #expect(twice.isEmpty, "requests the service answered afresh more than once (applied twice): \(twice)")

        // The cluster's balances and total are the model's (late re-sent responses to earlier
        // requests may still arrive first: they must match too).
        var sequence = Self.requestCount
        for request in [BankRequest.balance(account: 1), .balance(account: 2), .balance(account: 3), .total] {
            sequence += 1
            let answer = model.apply(request, at: .zero).encoded()
            expected[sequence] = answer
            var answered = false
            for _ in 0..<5 where !answered {
                if !client.isConnected { _ = try client.attach() }
                client.sendRequest(sequence: sequence, payload: request.encoded())
                while !answered, case .response(let answeredSequence, let payload, _) = client.next(timeoutNanos: 3_000_000_000) {
                    #expect(payload == expected[answeredSequence], "request \(answeredSequence) (\(answeredSequence == sequence ? "\(request)" : "a late re-send")): \(payload), the model says \(expected[answeredSequence] ?? [])")
                    answered = answeredSequence == sequence
                }
                if !answered { client.cut() }
            }
            #expect(answered, "no answer to \(request)")
        }
        #expect(model.totalMoney > 0)
        #expect(reattaches >= Self.leaderKills)
    }
}
