import Glibc
import KeelCore
import Testing
@testable import KeelIO

@Suite struct IOUringTransportTests {
    @Test func fiftyConnectionsEachEchoTheirOwnMessage() throws {
        let fixture = try TransportFixture()
        let transport = fixture.transport
        let (listener, port) = try fixture.listenOnLoopback()
        let connectionCount = 50
        let messageBytes = 64
        // Token layout: kind in bits 40..47, index below.
        let acceptKind: UInt64 = 1, connectKind: UInt64 = 2, clientSendKind: UInt64 = 3, clientReceiveKind: UInt64 = 4
        let serverReceiveKind: UInt64 = 5, serverSendKind: UInt64 = 6
        func token(_ kind: UInt64, _ index: Int) -> IOToken { IOToken(kind << 40 | UInt64(index)) }

        let outgoing = UnsafeMutableRawBufferPointer.allocate(byteCount: connectionCount * messageBytes, alignment: 8)
        let clientIncoming = UnsafeMutableRawBufferPointer.allocate(byteCount: connectionCount * messageBytes, alignment: 8)
        let serverIncoming = UnsafeMutableRawBufferPointer.allocate(byteCount: connectionCount * messageBytes, alignment: 8)
        defer { outgoing.deallocate(); clientIncoming.deallocate(); serverIncoming.deallocate() }
        for index in 0..<connectionCount * messageBytes { outgoing[index] = patternByte(index) }
        func slice(_ buffer: UnsafeMutableRawBufferPointer, _ index: Int) -> UnsafeMutableRawBufferPointer {
            UnsafeMutableRawBufferPointer(rebasing: buffer[index * messageBytes..<(index + 1) * messageBytes])
        }

        var clients: [ConnectionID] = []
        for index in 0..<connectionCount {
            try transport.submitAccept(listener, token: token(acceptKind, index))
            clients.append(try transport.submitConnect(host: "127.0.0.1", port: port, token: token(connectKind, index)))
        }
        var accepted = 0, echoedBack = 0
        var serverConnections = Array(repeating: ConnectionID(rawValue: -1), count: connectionCount)
        try fixture.run("50 echoes", until: { echoedBack == connectionCount }) { completion in
            let kind = completion.token.rawValue >> 40
            let index = Int(completion.token.rawValue & 0xFF_FFFF_FFFF)
            #expect(completion.succeeded, "\(completion)")
            switch kind {
            case acceptKind:
                // `index` is the accept's slot (accepts complete in any order; a slot is a slot).
                accepted += 1
                serverConnections[index] = ConnectionID(rawValue: completion.result)
                try transport.submitReceive(serverConnections[index], into: slice(serverIncoming, index), token: token(serverReceiveKind, index))
            case connectKind:
                try transport.submitSend(clients[index], UnsafeRawBufferPointer(slice(outgoing, index)), token: token(clientSendKind, index))
                try transport.submitReceive(clients[index], into: slice(clientIncoming, index), token: token(clientReceiveKind, index))
            case serverReceiveKind:
                #expect(completion.result == Int32(messageBytes), "loopback delivers a 64-byte message whole")
                try transport.submitSend(serverConnections[index], UnsafeRawBufferPointer(slice(serverIncoming, index)), token: token(serverSendKind, index))
            case clientReceiveKind:
                #expect(completion.result == Int32(messageBytes))
                #expect(memcmp(slice(clientIncoming, index).baseAddress!, slice(outgoing, index).baseAddress!, messageBytes) == 0,
                        "client \(index) got its own message back")
                echoedBack += 1
            default:
                break
            }
        }
        #expect(accepted == connectionCount)
        #expect(transport.openSocketCount == 1 + 2 * connectionCount)
        for client in clients { transport.close(client) }
        for server in serverConnections { transport.close(server) }
        transport.close(listener)
        #expect(transport.openSocketCount == 0)
    }

    @Test func aSixMebibyteFrameArrivesIntactAcrossManyReceives() throws {
        let fixture = try TransportFixture()
        let transport = fixture.transport
        let (client, server, listener) = try fixture.connectedPair()
        let frameBytes = 6 << 20
        let outgoing = UnsafeMutableRawBufferPointer.allocate(byteCount: frameBytes, alignment: 64)
        let receiveBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 << 10, alignment: 64)
        defer { outgoing.deallocate(); receiveBuffer.deallocate() }
        for index in 0..<frameBytes { outgoing[index] = patternByte(index) }

        var sent = 0, received = 0, receives = 0, sends = 0, mismatches = 0
        try transport.submitSend(client, UnsafeRawBufferPointer(outgoing), token: IOToken(10))
        try transport.submitReceive(server, into: receiveBuffer, token: IOToken(20))
        try fixture.run("6 MiB", until: { received == frameBytes && sent == frameBytes }) { completion in
            #expect(completion.succeeded, "\(completion)")
            guard completion.result > 0 else { throw TransportTestTimeout(description: "stream ended early: \(completion)") }
            if completion.token == IOToken(10) {
                sends += 1
                sent += Int(completion.result)
                // A short send leaves the rest for the caller to resubmit.
                if sent < frameBytes {
                    try transport.submitSend(client, UnsafeRawBufferPointer(rebasing: outgoing[sent...]), token: IOToken(10))
                }
            } else {
                receives += 1
                for offset in 0..<Int(completion.result) where receiveBuffer[offset] != patternByte(received + offset) { mismatches += 1 }
                received += Int(completion.result)
                if received < frameBytes { try transport.submitReceive(server, into: receiveBuffer, token: IOToken(20)) }
            }
        }
        #expect(mismatches == 0, "every byte arrives in order")
        #expect(receives >= frameBytes / (64 << 10), "a 64 KiB buffer needs at least 96 receives")
        #expect(sends >= 1)
        transport.close(client); transport.close(server); transport.close(listener)
    }

    @Test func aPeerThatStopsReadingFillsTheSendQueueThenIsDisconnectedAfterTheStallTimeout() throws {
        // Small kernel buffers so the stopped reader back-pressures quickly.
        let fixture = try TransportFixture(configuration: .init(socketBufferBytes: 16 << 10))
        let transport = fixture.transport
        let (client, server, listener) = try fixture.connectedPair()
        let queue = SendQueue(capacityBytes: 256 << 10)
        let chunk = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 64)
        defer { chunk.deallocate() }
        chunk.initializeMemory(as: UInt8.self, repeating: 0xAB)
        let stallTimeoutNanos: Int64 = 200_000_000

        // The server never posts a receive. Offer until refused, pumping sends as they complete.
        var offeredBytes = 0
        var refusedAtNanos: Int64?
        var abandonedSend: IOCompletion?
        func offerAndFlush() throws {
            // Offer as fast as the producer can: the queue fills within one round.
            while refusedAtNanos == nil {
                if queue.offer(UnsafeRawBufferPointer(chunk), nowNanos: wallNanos()) {
                    offeredBytes += chunk.count
                } else {
                    refusedAtNanos = wallNanos()
                }
            }
            try queue.flush(via: transport, connection: client, token: IOToken(7))
        }
        try fixture.run("the send queue to refuse an offer", beforeWaiting: offerAndFlush, until: { refusedAtNanos != nil }) { completion in
            #expect(completion.token == IOToken(7) && completion.succeeded, "\(completion)")
            queue.completeSend(bytes: Int(completion.result), nowNanos: wallNanos())
        }
        #expect(queue.backPressureEvents == 1)
        #expect(queue.freeBytes < chunk.count, "refused only because it was full")
        #expect(!queue.isStalled(nowNanos: wallNanos(), timeoutNanos: stallTimeoutNanos), "not stalled the moment it fills")

        // Keep pumping: the kernel buffers are full, so no send progresses and the peer goes stale.
        var stalledAtNanos: Int64?
        try fixture.run("the stall timeout", beforeWaiting: {
            try queue.flush(via: transport, connection: client, token: IOToken(7))
            if queue.isStalled(nowNanos: wallNanos(), timeoutNanos: stallTimeoutNanos) { stalledAtNanos = wallNanos() }
        }, until: { stalledAtNanos != nil }) { completion in
            queue.completeSend(bytes: Int(completion.result), nowNanos: wallNanos())
        }
        #expect(stalledAtNanos! - queue.lastProgressNanos > stallTimeoutNanos)
        #expect(queue.bytesSent < Int64(offeredBytes), "a stopped reader cannot have taken everything")
        #expect(queue.isSending, "one send is stuck in the kernel")

        // Disconnect the stuck peer: the stuck send completes cancelled and memory stays bounded.
        transport.close(client)
        try fixture.run("the stuck send to end", until: { abandonedSend != nil }) { completion in
            abandonedSend = completion
        }
        #expect(abandonedSend?.operation == .send)
        #expect(abandonedSend?.result == -Errno.canceled)
        queue.abandonSend()
        queue.reset()
        #expect(queue.isEmpty)
        transport.close(server); transport.close(listener)
    }

    @Test func aPeerThatClosesEndsTheReceiveWithZero() throws {
        let fixture = try TransportFixture()
        let (client, server, listener) = try fixture.connectedPair()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        try fixture.transport.submitReceive(client, into: buffer, token: IOToken(30))
        fixture.transport.close(server)
        let completion = try fixture.next("end of stream", token: IOToken(30))
        #expect(completion.operation == .receive)
        #expect(completion.result == 0, "an orderly close is end of stream")
        fixture.transport.close(client); fixture.transport.close(listener)
    }

    @Test func aPeerThatAbortsEndsTheReceiveWithConnectionReset() throws {
        let fixture = try TransportFixture()
        let (client, server, listener) = try fixture.connectedPair()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 256, alignment: 8)
        defer { buffer.deallocate() }
        try fixture.transport.submitReceive(client, into: buffer, token: IOToken(31))
        // SO_LINGER with a zero timeout makes close send RST instead of FIN.
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        #expect(setsockopt(server.rawValue, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size)) == 0)
        fixture.transport.close(server)
        let completion = try fixture.next("reset", token: IOToken(31))
        #expect(completion.result == -ECONNRESET)
        #expect(completion.error?.description.contains("connection reset") == true)
        fixture.transport.close(client); fixture.transport.close(listener)
    }

    @Test func aRefusedConnectCompletesWithATypedErrorNamingConnect() throws {
        let fixture = try TransportFixture()
        // A port that was just free: listen, note it, close.
        let (listener, port) = try fixture.listenOnLoopback()
        fixture.transport.close(listener)
        let connection = try fixture.transport.submitConnect(host: "127.0.0.1", port: port, token: IOToken(40))
        let completion = try fixture.next("refused connect", token: IOToken(40))
        #expect(completion.operation == .connect)
        #expect(completion.result == -ECONNREFUSED)
        let error = try #require(completion.error)
        #expect(error.operation == .connect)
        #expect(error.description.hasPrefix("connect failed"))
        #expect(error.description.contains("ECONNREFUSED"))
        fixture.transport.close(connection)
    }

    @Test func closingCancelsAPendingReceiveAndAccept() throws {
        let fixture = try TransportFixture()
        let (client, server, listener) = try fixture.connectedPair()
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { buffer.deallocate() }
        try fixture.transport.submitReceive(client, into: buffer, token: IOToken(50))
        try fixture.transport.submitAccept(listener, token: IOToken(51))
        fixture.transport.reapCompletions(into: &fixture.completions)
        let nothingYet = fixture.completions.isEmpty
        #expect(nothingYet, "neither can complete before the close")
        fixture.transport.close(client)
        fixture.transport.close(listener)
        var results: [UInt64: Int32] = [:]
        try fixture.run("cancellations", until: { results.count == 2 }) { results[$0.token.rawValue] = $0.result }
        #expect(results == [50: -Errno.canceled, 51: -Errno.canceled])
        #expect(fixture.ring.operationsInFlight == 0)
        fixture.transport.close(server)
    }

    @Test func listenRejectsANonNumericHostWithATypedError() throws {
        let fixture = try TransportFixture()
        #expect(throws: IOError.self) { try fixture.transport.listen(host: "not-an-address", port: 0) }
        #expect(throws: IOError(.connect, errno: Errno.invalid, subject: "example.invalid:1 (not an IPv4 address)")) {
            _ = try fixture.transport.submitConnect(host: "example.invalid", port: 1, token: IOToken(1))
        }
    }
}
