import Glibc
import KeelCore
import KeelIO
import KeelExamples
import KeelWire
import Testing

/// Sessions against real `keel node` processes (issue 8 §2, §6): timeouts, client closes,
/// shared-secret authentication, refused reattaches, malformed requests.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct SessionProcessTests {
    /// Sends `request` as the session's request `sequence` and returns the bank's answer.
    func ask(_ client: WireSessionClient, _ sequence: Int64, _ payload: [UInt8]) throws -> BankResponse {
        client.sendRequest(sequence: sequence, payload: payload)
        guard case .response(let answered, let bytes, _) = client.next(timeoutNanos: 10_000_000_000) else {
            throw HarnessError.timeout("no response to request \(sequence)")
        }
        #expect(answered == sequence)
        return try BankResponse.decode(bytes)
    }

    /// A session with neither requests nor keep-alives is closed (reason: timeout) once the
    /// timeout passes, and cannot be reattached; one that sends keep-alives stays open.
    @Test(.timeLimit(.minutes(2)))
    func silentSessionTimesOutAndKeepAlivesKeepOneOpen() throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        cluster.addArgumentsToEveryMember(["--session-timeout-ms", "1000"])
        try cluster.startAll()
        let silent = WireSessionClient(clientPorts: cluster.clientPorts)
        let chatty = WireSessionClient(clientPorts: cluster.clientPorts)
        #expect(try chatty.attach() == .attached)
        let clock = SystemClock()
        // The leader starts the silent session's clock after this (when its connect arrives).
        let openedAt = clock.monotonicNanos()
        #expect(try silent.attach() == .attached)
        var silentClosed: WireSessionClient.Inbound?
        while clock.monotonicNanos() - openedAt < 6_000_000_000 && silentClosed == nil {
            chatty.sendSignal(.keepAlive)
            silentClosed = silent.next(timeoutNanos: 200_000_000)
        }
        let waitedMillis = (clock.monotonicNanos() - openedAt) / 1_000_000
        #expect(silentClosed == .sessionClosed(.timedOut), "the silent session got \(String(describing: silentClosed)) after \(waitedMillis) ms")
        #expect(waitedMillis >= 1_000, "closed after \(waitedMillis) ms, before its timeout")
        if case .rejected(let reason, _) = try silent.attach() {
            #expect(reason == .sessionNotOpen)
        } else {
            Issue.record("a timed-out session was reattached")
        }
        // The session that kept sending keep-alives is still open and served.
        #expect(try ask(chatty, 1, BankRequest.open(account: 1).encoded()).status == .ok)
    }

    /// A client close ends the session (reason: client) and it cannot be reattached; its state stays.
    @Test(.timeLimit(.minutes(2)))
    func clientCloseEndsTheSession() throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = WireSessionClient(clientPorts: cluster.clientPorts)
        #expect(try client.attach() == .attached)
        #expect(try ask(client, 1, BankRequest.open(account: 5).encoded()).status == .ok)
        client.sendSignal(.close)
        #expect(client.next(timeoutNanos: 10_000_000_000) == .sessionClosed(.clientClosed))
        if case .rejected(let reason, _) = try client.attach() {
            #expect(reason == .sessionNotOpen)
        } else {
            Issue.record("a closed session was reattached")
        }
        let other = WireSessionClient(clientPorts: cluster.clientPorts)
        #expect(try other.attach() == .attached)
        #expect(try ask(other, 1, BankRequest.open(account: 5).encoded()).status == .accountExists)
    }

    /// With `--secret-file`, a client must present NAME:SECRET: a wrong secret or a malformed
    /// credential gets connect-rejected (authentication failed) and no session; the right one
    /// opens a session whose reattach needs the session's own secret and the same principal.
    @Test(.timeLimit(.minutes(2)))
    func sharedSecretAuthenticatesClientsAndReattaches() throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        let secretPath = cluster.root + "/cluster-secret"
        let file = try #require(fopen(secretPath, "w"))
        fputs("correct horse battery staple\n", file)
        fclose(file)
        cluster.addArgumentsToEveryMember(["--secret-file", secretPath])
        try cluster.startAll()
        let secret = Array("correct horse battery staple".utf8)

        for credentials in [Array("alice:wrong".utf8), Array("no-colon".utf8), [], Array("alice:".utf8) + secret + [0x21]] {
            let client = WireSessionClient(clientPorts: cluster.clientPorts, credentials: credentials)
            let outcome = try client.attach()
            guard case .rejected(let reason, let detail) = outcome else {
                Issue.record("credentials \(String(decoding: credentials, as: UTF8.self)) were accepted")
                continue
            }
            #expect(reason == .authenticationFailed)
            #expect(!detail.isEmpty)
        }

        let alice = WireSessionClient(clientPorts: cluster.clientPorts, credentials: Array("alice:".utf8) + secret)
        #expect(try alice.attach() == .attached)
        #expect(try ask(alice, 1, BankRequest.open(account: 1).encoded()).status == .ok)
        let session = alice.sessionID, sessionSecret = alice.secret
        alice.cut()

        // The session's secret is what proves a reattach; the cluster secret alone is not enough.
        let thief = WireSessionClient(clientPorts: cluster.clientPorts, credentials: Array("alice:".utf8) + secret)
        thief.adopt(sessionID: session, secret: sessionSecret ^ 1)
        if case .rejected(let reason, _) = try thief.attach() { #expect(reason == .authenticationFailed) } else { Issue.record("reattached with a wrong session secret") }
        // Another principal with the right session secret is refused too.
        let bob = WireSessionClient(clientPorts: cluster.clientPorts, credentials: Array("bob:".utf8) + secret)
        bob.adopt(sessionID: session, secret: sessionSecret)
        if case .rejected(let reason, _) = try bob.attach() { #expect(reason == .authenticationFailed) } else { Issue.record("bob reattached alice's session") }
        // Alice, with both, gets her session back where it was: the next sequence is 2.
        #expect(try alice.attach() == .attached)
        #expect(alice.sessionID == session)
        #expect(try ask(alice, 2, BankRequest.deposit(account: 1, amount: 10).encoded()) == BankResponse(status: .ok, first: 10))
    }

    /// Bytes the bank cannot decode get a `malformed` answer and change nothing.
    @Test(.timeLimit(.minutes(2)))
    func malformedRequestsGetAnErrorAndChangeNothing() throws {
        let cluster = try NodeCluster(service: "bank")
        defer { cluster.shutdown() }
        try cluster.startAll()
        let client = WireSessionClient(clientPorts: cluster.clientPorts)
        #expect(try client.attach() == .attached)
        #expect(try ask(client, 1, BankRequest.open(account: 1).encoded()).status == .ok)
        #expect(try ask(client, 2, BankRequest.deposit(account: 1, amount: 100).encoded()) == BankResponse(status: .ok, first: 100))
        let deposit = BankRequest.deposit(account: 1, amount: 5).encoded()
        let malformed: [[UInt8]] = [[], [0xFF], [0xFF] + deposit.dropFirst(), Array(deposit.dropLast()), deposit + [0], [UInt8](repeating: 0xAB, count: 300)]
        for (index, bytes) in malformed.enumerated() {
            #expect(try ask(client, 3 + Int64(index), bytes).status == .malformed, "\(bytes.count) bytes")
        }
        var sequence = 3 + Int64(malformed.count)
        #expect(try ask(client, sequence, BankRequest.balance(account: 1).encoded()) == BankResponse(status: .ok, first: 100, second: 0))
        sequence += 1
        #expect(try ask(client, sequence, BankRequest.total.encoded()) == BankResponse(status: .ok, first: 100, second: 1))
    }
}
