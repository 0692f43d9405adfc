import KeelCore
import KeelPOSIX
import Testing

/// PosixTransport over real loopback sockets. Each test owns its transports; closing them (and
/// their deinit) closes every socket.
@Suite(.serialized) struct PosixTransportTests {
    @Test(.timeLimit(.minutes(1)))
    func sendAndReceiveOneMessage() throws {
        let server = TransportHarness(), client = TransportHarness()
        let (listener, port) = try server.listen()
        let (clientSide, serverSide) = try TransportHarness.connect(client, to: server, listener: listener, port: port, tokenBase: 1)
        let message = TestBuffer(Array("hello, keel".utf8))
        let received = TestBuffer(count: 64)
        try server.transport.submitReceive(serverSide, into: received.bytes, token: IOToken(10))
        try client.transport.submitSend(clientSide, UnsafeRawBufferPointer(rebasing: message.readOnly[0..<11]), token: IOToken(11))
        let sent = try client.await(11, pumping: [server])
        #expect(sent.operation == .send && sent.result == 11)
        let got = try server.await(10, pumping: [client])
        #expect(got.operation == .receive && got.result == 11)
        #expect(received.prefix(11) == Array("hello, keel".utf8))
        client.transport.close(clientSide)
        server.transport.close(serverSide)
        server.transport.close(listener)
        #expect(client.transport.openSocketCount == 0 && server.transport.openSocketCount == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func manyConnectionsEachEchoed() throws {
        let server = TransportHarness(), client = TransportHarness()
        let (listener, port) = try server.listen()
        let connectionCount = 64
        var pairs: [(ConnectionID, ConnectionID)] = []
        // Connect all first (accepts queued several at a time), then talk on all at once.
        for index in 0..<connectionCount {
            pairs.append(try TransportHarness.connect(client, to: server, listener: listener, port: port, tokenBase: UInt64(1000 + 10 * index)))
        }
        #expect(server.transport.openSocketCount == connectionCount + 1)
        let outgoing = (0..<connectionCount).map { TestBuffer(Array("message \($0) from the client".utf8)) }
        let serverBuffers = (0..<connectionCount).map { _ in TestBuffer(count: 256) }
        let clientBuffers = (0..<connectionCount).map { _ in TestBuffer(count: 256) }
        for index in 0..<connectionCount {
            let (clientSide, serverSide) = pairs[index]
            let length = Array("message \(index) from the client".utf8).count
            try server.transport.submitReceive(serverSide, into: serverBuffers[index].bytes, token: IOToken(UInt64(100_000 + index)))
            try client.transport.submitReceive(clientSide, into: clientBuffers[index].bytes, token: IOToken(UInt64(200_000 + index)))
            try client.transport.submitSend(clientSide, UnsafeRawBufferPointer(rebasing: outgoing[index].readOnly[0..<length]), token: IOToken(UInt64(300_000 + index)))
        }
        // The server echoes each message back on its own connection.
        for index in 0..<connectionCount {
            let got = try server.await(UInt64(100_000 + index), pumping: [client])
            #expect(got.succeeded && got.result > 0)
            try server.transport.submitSend(
                pairs[index].1, UnsafeRawBufferPointer(rebasing: serverBuffers[index].readOnly[0..<Int(got.result)]),
                token: IOToken(UInt64(400_000 + index)))
        }
        for index in 0..<connectionCount {
            let echoed = try client.await(UInt64(200_000 + index), pumping: [server])
            #expect(echoed.succeeded)
            #expect(clientBuffers[index].prefix(Int(echoed.result)) == Array("message \(index) from the client".utf8))
            #expect(try client.await(UInt64(300_000 + index), pumping: [server]).succeeded)
            #expect(try server.await(UInt64(400_000 + index), pumping: [client]).succeeded)
        }
        for (clientSide, serverSide) in pairs {
            client.transport.close(clientSide)
            server.transport.close(serverSide)
        }
        server.transport.close(listener)
        #expect(server.transport.openSocketCount == 0 && client.transport.openSocketCount == 0)
    }

    /// Length-prefixed frames of up to 3 MiB, sent whole and received in 64 KiB pieces with small
    /// kernel buffers: both sides must make progress together and every byte must arrive in order.
    @Test(.timeLimit(.minutes(1)))
    func largeFramesAcrossManyReceives() throws {
        let small = PosixTransport.Configuration(socketBufferBytes: 64 << 10)
        let server = TransportHarness(configuration: small), client = TransportHarness(configuration: small)
        let (listener, port) = try server.listen()
        let (clientSide, serverSide) = try TransportHarness.connect(client, to: server, listener: listener, port: port, tokenBase: 1)
        let frameSizes = [3 << 20, 17, 1 << 20, 100_000]
        var stream: [UInt8] = []
        for (index, size) in frameSizes.enumerated() {
            stream += withUnsafeBytes(of: UInt32(size).littleEndian, Array.init)
            stream += (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ index) }
        }
        let outgoing = TestBuffer(stream)
        try client.transport.submitSend(clientSide, outgoing.readOnly, token: IOToken(50))
        let piece = TestBuffer(count: 64 << 10)
        var received: [UInt8] = []
        received.reserveCapacity(stream.count)
        var receiveCount = 0
        while received.count < stream.count {
            try server.transport.submitReceive(serverSide, into: piece.bytes, token: IOToken(60))
            let got = try server.await(60, pumping: [client])
            #expect(got.succeeded && got.result > 0)
            guard got.result > 0 else { break }
            received += piece.prefix(Int(got.result))
            receiveCount += 1
        }
        let sent = try client.await(50, pumping: [server])
        #expect(sent.result == Int32(stream.count))
        #expect(received == stream)
        #expect(receiveCount >= stream.count / (64 << 10))
        // Reassemble the frames from the received bytes.
        var offset = 0, sizes: [Int] = []
        while offset < received.count {
            let size = Int(received[offset]) | Int(received[offset + 1]) << 8 | Int(received[offset + 2]) << 16 | Int(received[offset + 3]) << 24
            sizes.append(size)
            offset += 4 + size
        }
        #expect(sizes == frameSizes)
    }

    @Test(.timeLimit(.minutes(1)))
    func peerThatClosesEndsTheStream() throws {
        let server = TransportHarness(), client = TransportHarness()
        let (listener, port) = try server.listen()
        let (clientSide, serverSide) = try TransportHarness.connect(client, to: server, listener: listener, port: port, tokenBase: 1)
        let buffer = TestBuffer(count: 64)
        try client.transport.submitReceive(clientSide, into: buffer.bytes, token: IOToken(20))
        server.transport.close(serverSide)
        let endOfStream = try client.await(20, pumping: [server])
        #expect(endOfStream.operation == .receive && endOfStream.result == 0)
        // Writing into a connection the peer closed fails (EPIPE or ECONNRESET) rather than raising SIGPIPE.
        let payload = TestBuffer(count: 1 << 16)
        var failure: IOError?
        for attempt in 0..<20 where failure == nil {
            try client.transport.submitSend(clientSide, payload.readOnly, token: IOToken(UInt64(30 + attempt)))
            failure = try client.await(UInt64(30 + attempt), pumping: [server]).error
        }
        #expect(failure?.operation == .send)
        #expect(failure?.errno == 32 || failure?.errno == 104)
    }

    @Test(.timeLimit(.minutes(1)))
    func refusedConnectIsATypedError() throws {
        let probe = TransportHarness()
        // Find a port nobody listens on: bind one, then close it.
        let (listener, port) = try probe.listen()
        probe.transport.close(listener)
        let client = TransportHarness()
        let connection = try client.transport.submitConnect(host: "127.0.0.1", port: port, token: IOToken(7))
        let completion = try client.await(7)
        #expect(completion.operation == .connect)
        #expect(completion.error == IOError(.connect, errno: 111))
        client.transport.close(connection)
        #expect(client.transport.openSocketCount == 0)
    }

    @Test(.timeLimit(.minutes(1)))
    func closeCancelsQueuedOperations() throws {
        let server = TransportHarness(), client = TransportHarness()
        let (listener, port) = try server.listen()
        let (clientSide, serverSide) = try TransportHarness.connect(client, to: server, listener: listener, port: port, tokenBase: 1)
        let buffer = TestBuffer(count: 16)
        try client.transport.submitReceive(clientSide, into: buffer.bytes, token: IOToken(40))
        try server.transport.submitAccept(listener, token: IOToken(41))
        client.transport.close(clientSide)
        server.transport.close(listener)
        let receive = try client.await(40)
        #expect(receive.operation == .receive && receive.result == -Errno.canceled)
        let accept = try server.await(41)
        #expect(accept.operation == .accept && accept.result == -Errno.canceled)
        // Operations on a closed connection are refused at once.
        #expect(throws: IOError(.receive, errno: Errno.badFile, subject: "\(clientSide)")) {
            try client.transport.submitReceive(clientSide, into: buffer.bytes, token: IOToken(42))
        }
        server.transport.close(serverSide)
    }

    /// A peer that stops reading: once the kernel buffers are full a send stays queued (the caller
    /// sees no completion), a full queue refuses more with EAGAIN, and reading resumes it all.
    @Test(.timeLimit(.minutes(1)))
    func stalledReaderBackPressuresTheSender() throws {
        let config = PosixTransport.Configuration(socketBufferBytes: 16 << 10, operationsPerConnection: 4)
        let server = TransportHarness(configuration: config), client = TransportHarness(configuration: config)
        let (listener, port) = try server.listen()
        let (clientSide, serverSide) = try TransportHarness.connect(client, to: server, listener: listener, port: port, tokenBase: 1)
        let chunk = TestBuffer(count: 1 << 20)
        for index in 0..<4 {
            try client.transport.submitSend(clientSide, chunk.readOnly, token: IOToken(UInt64(100 + index)))
        }
        for _ in 0..<20 { try client.pump() }
        #expect(!client.hasCompleted(103), "a 4 MiB backlog cannot fit in 16 KiB socket buffers")
        #expect(throws: IOError(.send, errno: Errno.tryAgain, subject: "send queue of \(clientSide) full")) {
            try client.transport.submitSend(clientSide, chunk.readOnly, token: IOToken(104))
        }
        // The reader wakes up and drains everything.
        let sink = TestBuffer(count: 256 << 10)
        var drained = 0
        while drained < 4 << 20 {
            try server.transport.submitReceive(serverSide, into: sink.bytes, token: IOToken(200))
            let got = try server.await(200, pumping: [client])
            #expect(got.result > 0)
            guard got.result > 0 else { break }
            drained += Int(got.result)
        }
        for index in 0..<4 {
            #expect(try client.await(UInt64(100 + index), pumping: [server]).result == 1 << 20)
        }
        #expect(drained == 4 << 20)
    }

    @Test func hostNamesAreNotResolved() {
        let transport = PosixTransport()
        #expect(throws: IOError.self) { _ = try transport.submitConnect(host: "example.invalid", port: 1, token: IOToken(1)) }
        #expect(transport.openSocketCount == 0)
    }
}
