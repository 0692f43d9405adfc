import Glibc
import KeelCore
import KeelPOSIX
import Testing

/// Issue 5 §3: each mode of the fault proxy over real loopback sockets, with a real echo server
/// thread or with both ends held by the test. Every wait is bounded; every socket is closed.
@Suite(.timeLimit(.minutes(1)))
struct FaultProxyTests {
    private func makeProxy(targetPort: UInt16, control: Bool = false) throws -> FaultProxy {
        try FaultProxy(listen: FaultProxyEndpoint(host: "127.0.0.1", port: 0),
                       target: FaultProxyEndpoint(host: "127.0.0.1", port: targetPort),
                       control: control ? FaultProxyEndpoint(host: "127.0.0.1", port: 0) : nil)
    }

    @Test func commandsParseFromTheirTextForms() throws {
        #expect(try FaultProxyCommand(parsing: "pass") == .set(.pass))
        #expect(try FaultProxyCommand(parsing: " drop \r\n") == .set(.drop))
        #expect(try FaultProxyCommand(parsing: "drop a->b") == .set(.dropOneWay(.toTarget)))
        #expect(try FaultProxyCommand(parsing: "drop b->a") == .set(.dropOneWay(.toClient)))
        #expect(try FaultProxyCommand(parsing: "delay 50") == .set(.delay(milliseconds: 50)))
        #expect(try FaultProxyCommand(parsing: "cut") == .cut)
        #expect(try FaultProxyCommand(parsing: "status") == .status)
        for bad in ["", "passs", "drop a->c", "delay", "delay -1", "delay 60001", "delay x", "cut now"] {
            #expect(throws: FaultProxyCommandError.self, "\"\(bad)\" must be refused") { try FaultProxyCommand(parsing: bad) }
        }
        for command: FaultProxyCommand in [.set(.pass), .set(.drop), .set(.dropOneWay(.toClient)), .set(.delay(milliseconds: 7)), .cut] {
            #expect(try FaultProxyCommand(parsing: command.description) == command, "text form round-trips")
        }
        #expect(FaultProxyEndpoint(parsing: "localhost:9010") == FaultProxyEndpoint(host: "127.0.0.1", port: 9010))
        #expect(FaultProxyEndpoint(parsing: "127.0.0.1") == nil)
        #expect(FaultProxyEndpoint(parsing: ":80") == nil)
    }

    @Test func passForwardsBothWaysIncludingALargePayload() async throws {
        let echo = try ProxyEchoServer()
        defer { echo.stop() }
        let proxy = try makeProxy(targetPort: echo.port)
        defer { proxy.stop() }
        let client = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        try client.send("hello")
        #expect(client.receiveText(5) == "hello")

        var payload = [UInt8](repeating: 0, count: 3 << 20)
        var random = SeededRandom(seed: 11)
        for index in payload.indices { payload[index] = UInt8(truncatingIfNeeded: random.next()) }
        // Send from another task: a 3 MiB echo cannot sit in socket buffers while nobody reads.
        let sender = Task.detached { [payload, descriptor = client.descriptor] in
            var offset = 0
            while offset < payload.count {
                let sent = payload.withUnsafeBytes { send(descriptor, $0.baseAddress! + offset, min(65536, payload.count - offset), Int32(MSG_NOSIGNAL)) }
                if sent <= 0 { return }
                offset += sent
            }
        }
        let echoed = client.receive(count: payload.count, timeoutMillis: 20_000)
        await sender.value
        #expect(echoed.bytes.count == payload.count)
        #expect(echoed.bytes == payload, "bytes arrive intact and in order")
        let statistics = proxy.statistics
        #expect(statistics.bytesForwardedToTarget == Int64(5 + payload.count))
        #expect(statistics.bytesForwardedToClient == Int64(5 + payload.count))
        #expect(statistics.connectionsAccepted == 1)
        #expect(statistics.connectionsOpen == 1)
    }

    @Test func dropDiscardsEverythingAndKeepsTheConnection() throws {
        let echo = try ProxyEchoServer()
        defer { echo.stop() }
        let proxy = try makeProxy(targetPort: echo.port)
        defer { proxy.stop() }
        let client = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        try client.send("one")
        #expect(client.receiveText(3) == "one")

        #expect(proxy.apply(.set(.drop)))
        try client.send("lost")
        let during = client.receive(count: 4, timeoutMillis: 300)
        #expect(during.bytes.isEmpty)
        #expect(!during.closed, "a partition keeps connections open")
        #expect(proxy.statistics.bytesDroppedToTarget == 4)

        #expect(proxy.apply(.set(.pass)))
        try client.send("back")
        #expect(client.receiveText(4) == "back", "healing forwards new bytes; the dropped ones are gone")
        #expect(proxy.statistics.mode == .pass)
    }

    @Test func dropOneWayCutsOnlyThatDirection() throws {
        let target = try ProxyTestListener()
        let proxy = try makeProxy(targetPort: target.port)
        defer { proxy.stop() }
        let a = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        let b = try target.accept()

        #expect(proxy.apply(.set(.dropOneWay(.toTarget))))
        try a.send("a to b")
        try b.send("b to a")
        #expect(a.receiveText(6) == "b to a")
        #expect(b.receive(count: 6, timeoutMillis: 300).bytes.isEmpty, "a->b is dropped")

        #expect(proxy.apply(.set(.dropOneWay(.toClient))))
        try a.send("again")
        try b.send("gone")
        #expect(b.receiveText(5) == "again")
        #expect(a.receive(count: 4, timeoutMillis: 300).bytes.isEmpty, "b->a is dropped")
        let statistics = proxy.statistics
        #expect(statistics.bytesDroppedToTarget == 6)
        #expect(statistics.bytesDroppedToClient == 4)
    }

    @Test func delayHoldsBytesForTheGivenTime() throws {
        let echo = try ProxyEchoServer()
        defer { echo.stop() }
        let proxy = try makeProxy(targetPort: echo.port)
        defer { proxy.stop() }
        let client = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        try client.send("warm")
        #expect(client.receiveText(4) == "warm")

        #expect(proxy.apply(.set(.delay(milliseconds: 150))))
        var started = ProxyTestSocket.nowMillis()
        try client.send("slow")
        #expect(client.receiveText(4) == "slow")
        let delayedMillis = ProxyTestSocket.nowMillis() - started
        // Held 150 ms on the way there and 150 ms on the way back.
        #expect(delayedMillis >= 295, "round trip took \(delayedMillis) ms")
        #expect(delayedMillis < 5000)

        #expect(proxy.apply(.set(.pass)))
        started = ProxyTestSocket.nowMillis()
        try client.send("fast")
        #expect(client.receiveText(4) == "fast")
        #expect(ProxyTestSocket.nowMillis() - started < 250, "no delay after pass")
    }

    @Test func cutClosesEveryConnectionAndNewOnesWork() throws {
        let target = try ProxyTestListener()
        let proxy = try makeProxy(targetPort: target.port)
        defer { proxy.stop() }
        let a = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        let b = try target.accept()
        try a.send("x")
        #expect(b.receiveText(1) == "x")

        #expect(proxy.apply(.cut))
        #expect(a.receive(count: 1, timeoutMillis: 2000).closed, "the client side is closed")
        #expect(b.receive(count: 1, timeoutMillis: 2000).closed, "the target side is closed")
        #expect(proxy.statistics.connectionsOpen == 0)

        let a2 = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        let b2 = try target.accept()
        try a2.send("y")
        #expect(b2.receiveText(1) == "y")
        #expect(proxy.statistics.connectionsAccepted == 2)
    }

    @Test func theControlPortTakesTextCommandsAndAnswersOk() throws {
        let echo = try ProxyEchoServer()
        defer { echo.stop() }
        let proxy = try makeProxy(targetPort: echo.port, control: true)
        defer { proxy.stop() }
        let control = try ProxyTestSocket.connect(port: try #require(proxy.controlEndpoint).port)
        let client = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        try client.send("ping")
        #expect(client.receiveText(4) == "ping")

        try control.send("drop a->b\n")
        #expect(control.receiveText(3) == "ok\n")
        #expect(proxy.statistics.mode == .dropOneWay(.toTarget))
        try client.send("void")
        #expect(client.receive(count: 4, timeoutMillis: 300).bytes.isEmpty)

        try control.send("status\n")
        let status = "ok mode=drop a->b connections=1\n"
        #expect(control.receiveText(status.utf8.count) == status)
        try control.send("bogus\n")
        let answer = control.receiveText(200, timeoutMillis: 500)
        #expect(answer.hasPrefix("error: bad command \"bogus\""))
        // Two commands in one write are both answered, in order.
        try control.send("delay 20\npass\n")
        #expect(control.receiveText(6) == "ok\nok\n")
        #expect(proxy.statistics.mode == .pass)
        try client.send("pong")
        #expect(client.receiveText(4) == "pong")
        try control.send("cut\n")
        #expect(control.receiveText(3) == "ok\n")
        #expect(client.receive(count: 1, timeoutMillis: 2000).closed)
    }

    @Test func anUnreachableTargetClosesTheClientAndStopClosesTheListener() throws {
        // A port nobody listens on: bind one, note it, close it.
        let port = try ProxyTestListener().port
        let proxy = try makeProxy(targetPort: port)
        let client = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        #expect(client.receive(count: 1, timeoutMillis: 2000).closed, "the client learns the target refused")

        let listenPort = proxy.listenEndpoint.port
        proxy.stop()
        proxy.stop()  // idempotent
        #expect(throws: ProxyTestError.self, "nothing listens after stop") { try ProxyTestSocket.connect(port: listenPort) }
        #expect(!proxy.apply(.set(.drop), timeoutNanos: 100_000_000), "a stopped proxy applies nothing")
    }
}

@Suite(.timeLimit(.minutes(1)))
struct FaultProxyBoundTests {
    @Test func aReceiverThatStopsReadingBackPressuresTheSenderWithBoundedMemory() throws {
        let target = try ProxyTestListener()
        let proxy = try FaultProxy(listen: FaultProxyEndpoint(host: "127.0.0.1", port: 0),
                                   target: FaultProxyEndpoint(host: "127.0.0.1", port: target.port))
        defer { proxy.stop() }
        let a = try ProxyTestSocket.connect(port: proxy.listenEndpoint.port)
        let b = try target.accept()  // never reads
        _ = b
        let flags = fcntl(a.descriptor, F_GETFL)
        _ = fcntl(a.descriptor, F_SETFL, flags | O_NONBLOCK)
        let chunk = [UInt8](repeating: 7, count: 65536)
        var sentBytes = 0
        var lastProgressMillis = ProxyTestSocket.nowMillis()
        let startMillis = lastProgressMillis
        // Send until nothing more is taken for 300 ms (or 10 s pass).
        while ProxyTestSocket.nowMillis() - lastProgressMillis < 300 && ProxyTestSocket.nowMillis() - startMillis < 10_000 {
            let sent = chunk.withUnsafeBytes { send(a.descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                sentBytes += sent
                lastProgressMillis = ProxyTestSocket.nowMillis()
            } else {
                usleep(1000)
            }
        }
        // The proxy holds at most 4 MiB per direction; the rest sits in the kernel's socket buffers
        // (sender, proxy both ways, receiver: a few MiB each on loopback).
        #expect(sentBytes > 0)
        #expect(sentBytes < 40 << 20, "the sender was stopped after \(sentBytes) bytes")
        #expect(ProxyTestSocket.nowMillis() - startMillis < 10_000, "the sender was back-pressured, not accepted forever")
        #expect(proxy.statistics.connectionsOpen == 1, "a slow receiver is not disconnected by the proxy")
    }
}
