import KeelCore
import KeelIO
import KeelSimulation
import Testing

/// What every `Transport` must do the same way, checked against the io_uring transport over real
/// loopback sockets and against the simulated one, so code written against one runs on the other.
final class TransportSpec<T: Transport> {
    let transport: T
    /// Where a listener is made and connected to.
    let host: String
    let listenPort: UInt16
    /// Lets completions arrive: waits a little on a real transport, advances virtual time on a
    /// simulated one.
    let pump: () throws -> Void
    private var buffer = IOCompletionBuffer(capacity: 64)
    private var pending: [IOCompletion] = []

    init(transport: T, host: String, listenPort: UInt16, pump: @escaping () throws -> Void) {
        self.transport = transport
        self.host = host
        self.listenPort = listenPort
        self.pump = pump
    }

    func next(_ token: IOToken) throws -> IOCompletion {
        for _ in 0..<20_000 {
            if let index = pending.firstIndex(where: { $0.token == token }) { return pending.remove(at: index) }
            transport.reapCompletions(into: &buffer)
            for index in 0..<buffer.count { pending.append(buffer[index]) }
            buffer.removeAll()
            try pump()
        }
        throw IOError(.timeout, errno: Errno.timedOut, subject: "waiting for \(token)")
    }

    /// Connects to a fresh listener at `port`; returns (client, server, listener).
    func connectedPair(port: UInt16) throws -> (ConnectionID, ConnectionID, ConnectionID) {
        let listener = try transport.listen(host: host, port: port)
        try transport.submitAccept(listener, token: IOToken(1))
        let client = try transport.submitConnect(host: host, port: port, token: IOToken(2))
        let accepted = try next(IOToken(1))
        let connected = try next(IOToken(2))
        #expect(accepted.operation == .accept && accepted.succeeded, "\(accepted)")
        #expect(connected.operation == .connect && connected.result == 0, "\(connected)")
        return (client, ConnectionID(rawValue: accepted.result), listener)
    }

    func run() throws {
        let (client, server, listener) = try connectedPair(port: listenPort)
        let message: [UInt8] = Array("hello, transport".utf8)
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { incoming.deallocate() }

        // Bytes sent on one end arrive at the other; the accept's result is the server's id.
        try message.withUnsafeBytes { bytes in
            try transport.submitSend(client, bytes, token: IOToken(3))
            try transport.submitReceive(server, into: incoming, token: IOToken(4))
            #expect(try next(IOToken(3)).result == Int32(message.count))
            let received = try next(IOToken(4))
            #expect(received.operation == .receive)
            #expect(Array(incoming[0..<Int(received.result)]) == message)
        }

        // An orderly close by the peer ends the stream with 0.
        try transport.submitReceive(server, into: incoming, token: IOToken(5))
        transport.close(client)
        #expect(try next(IOToken(5)).result == 0)

        // Closing a connection cancels what is pending on it.
        let (client2, server2, listener2) = try connectedPair(port: listenPort &+ 1)
        try transport.submitReceive(client2, into: incoming, token: IOToken(6))
        transport.close(client2)
        let cancelled = try next(IOToken(6))
        #expect(cancelled.result == -Errno.canceled)

        // A connect where nobody listens is refused, typed as a connect error.
        transport.close(listener)
        let refused = try transport.submitConnect(host: host, port: listenPort, token: IOToken(7))
        let refusal = try next(IOToken(7))
        #expect(refusal.error == IOError(.connect, errno: Errno.connectionRefused))
        for connection in [server, server2, listener2, refused] { transport.close(connection) }
    }
}

@Suite struct TransportSpecTests {
    @Test func ioUringTransportMeetsTheSpec() throws {
        let ring = try Ring()
        let transport = IOUringTransport(ring: ring)
        // Two adjacent free ports: take an ephemeral one and hope its neighbour is free too;
        // retry on a few bases when it is not.
        var lastError: (any Error)?
        for _ in 0..<5 {
            let probe = try transport.listen(host: "127.0.0.1", port: 0)
            let port = try transport.localPort(probe)
            transport.close(probe)
            let spec = TransportSpec(transport: transport, host: "127.0.0.1", listenPort: port) {
                try transport.waitForCompletions(timeoutNanos: 1_000_000)
            }
            do {
                try spec.run()
                return
            } catch let error as IOError where error.errno == Errno.addressInUse {
                lastError = error
            }
        }
        Issue.record("no free adjacent ports: \(String(describing: lastError))")
    }

    @Test func simulatedTransportMeetsTheSpec() throws {
        let time = SimulatedTimeSource()
        let network = SimulatedNetwork(seed: 11, timeSource: time)
        let transport = network.makeTransport(host: "10.0.0.1")
        let spec = TransportSpec(transport: transport, host: "10.0.0.1", listenPort: 9000) {
            time.advance(byNanos: 100_000)
        }
        try spec.run()
    }
}
