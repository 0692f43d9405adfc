import KeelCore
import KeelSimulation
import Testing

/// Two simulated processes, "a" and "b", and a loop that advances virtual time and collects
/// each side's completions.
final class NetworkHarness {
    let time = SimulatedTimeSource()
    let network: SimulatedNetwork
    let a: SimulatedTransport
    let b: SimulatedTransport
    private var buffer = IOCompletionBuffer(capacity: 256)
    /// Every completion seen, with its side and virtual time: the history a seed determines.
    var trace: [String] = []

    init(seed: UInt64, faults: SimulatedNetworkFaults = SimulatedNetworkFaults()) {
        network = SimulatedNetwork(seed: seed, timeSource: time, faults: faults)
        a = network.makeTransport(host: "a")
        b = network.makeTransport(host: "b")
    }

    /// Reaps both sides, then advances time by at most `stepNanos` (to the next event when
    /// sooner), until `done()` or `limitNanos` of virtual time passes.
    func run(stepNanos: Int64 = 1_000_000, limitNanos: Int64 = 60_000_000_000, until done: () -> Bool,
             handle: (SimulatedTransport, IOCompletion) throws -> Void) rethrows {
        let end = time.nowNanos + limitNanos
        while !done() && time.nowNanos < end {
            for side in [a, b] {
                side.reapCompletions(into: &buffer)
                for index in 0..<buffer.count {
                    let completion = buffer[index]
                    trace.append("\(time.nowNanos) \(side.host) \(completion.operation) \(completion.token.rawValue) \(completion.result)")
                    try handle(side, completion)
                }
                buffer.removeAll()
            }
            if done() { return }
            let next = network.nextEventNanos().map { max($0, time.nowNanos + 1) } ?? .max
            time.advance(toNanos: min(next, time.nowNanos + stepNanos, end))
        }
    }

    /// Advances time by `nanos`, reaping along the way.
    func idle(_ nanos: Int64, handle: (SimulatedTransport, IOCompletion) throws -> Void = { _, _ in }) rethrows {
        try run(limitNanos: nanos, until: { false }, handle: handle)
    }

    /// A connection from a to b's listener on port 7000: (a's end, b's end).
    func connect() throws -> (ConnectionID, ConnectionID) {
        let listener = try b.listen(host: "b", port: 7000)
        try b.submitAccept(listener, token: IOToken(1))
        let client = try a.submitConnect(host: "b", port: 7000, token: IOToken(2))
        var server: ConnectionID?
        var connected = false
        try run(until: { server != nil && connected }) { side, completion in
            #expect(completion.succeeded, "\(completion)")
            if completion.operation == .accept { server = ConnectionID(rawValue: completion.result) }
            if completion.operation == .connect { connected = true }
        }
        return (client, try #require(server))
    }
}

@Suite struct SimulatedNetworkTests {
    @Test func bytesArriveInOrderDespiteJitterAndALongTail() throws {
        let faults = SimulatedNetworkFaults(latencyJitterNanos: 500_000, latencyTailChance: 0.2, latencyTailMaxNanos: 50_000_000)
        let harness = NetworkHarness(seed: 7, faults: faults)
        let (client, server) = try harness.connect()
        let messageCount = 500
        // Each message is 16 bytes of its own number: order and completeness are checkable.
        let outgoing = UnsafeMutableRawBufferPointer.allocate(byteCount: messageCount * 16, alignment: 8)
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: 100, alignment: 8)
        defer { outgoing.deallocate(); incoming.deallocate() }
        for index in 0..<messageCount * 16 { outgoing[index] = UInt8(truncatingIfNeeded: index / 16) }
        var nextSend = 0, received: [UInt8] = []
        try harness.a.submitSend(client, UnsafeRawBufferPointer(rebasing: outgoing[0..<16]), token: IOToken(10))
        try harness.b.submitReceive(server, into: incoming, token: IOToken(20))
        try harness.run(until: { received.count == messageCount * 16 }) { side, completion in
            #expect(completion.succeeded)
            if completion.token == IOToken(10) {
                nextSend += Int(completion.result)
                if nextSend < outgoing.count {
                    // Sends are submitted one after another, each drawing its own delay.
                    let end = min(nextSend + 16, outgoing.count)
                    try harness.a.submitSend(client, UnsafeRawBufferPointer(rebasing: outgoing[nextSend..<end]), token: IOToken(10))
                }
            } else {
                received.append(contentsOf: incoming[0..<Int(completion.result)])
                try harness.b.submitReceive(server, into: incoming, token: IOToken(20))
            }
        }
        #expect(received.count == messageCount * 16)
        #expect(received == Array(outgoing), "a TCP stream never reorders, whatever each send's delay")
        #expect(harness.network.connectionsCut == 0)
    }

    @Test func aPartitionHoldsBytesAndResetsTheConnectionAfterTheRetransmissionTimeout() throws {
        let harness = NetworkHarness(seed: 1, faults: SimulatedNetworkFaults(retransmissionTimeoutNanos: 500_000_000))
        let (client, server) = try harness.connect()
        let message: [UInt8] = Array(repeating: 0x5A, count: 32)
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { incoming.deallocate() }
        harness.network.partition("a", "b")
        try message.withUnsafeBytes { bytes in
            try harness.a.submitSend(client, bytes, token: IOToken(11))
            try harness.b.submitReceive(server, into: incoming, token: IOToken(21))
            var receiveResult: Int32?
            var receivedBeforeTimeout = false
            try harness.run(until: { receiveResult != nil }) { _, completion in
                if completion.token == IOToken(21) {
                    receiveResult = completion.result
                    receivedBeforeTimeout = harness.time.nowNanos < 500_000_000
                }
            }
            #expect(receiveResult == -Errno.connectionTimedOut, "the held bytes are dropped with the connection")
            #expect(!receivedBeforeTimeout)
        }
        #expect(harness.network.bytesDelivered == 0)
        #expect(harness.network.connectionsCut == 1)

        // A new connect across the partition times out; once healed, it succeeds.
        _ = try harness.a.submitConnect(host: "b", port: 7000, token: IOToken(30))
        var connectResult: Int32?
        harness.run(until: { connectResult != nil }) { _, completion in
            if completion.token == IOToken(30) { connectResult = completion.result }
        }
        #expect(connectResult == -Errno.connectionTimedOut)
        harness.network.healAll()
        _ = try harness.a.submitConnect(host: "b", port: 7000, token: IOToken(31))
        connectResult = nil
        harness.run(until: { connectResult != nil }) { _, completion in
            if completion.token == IOToken(31) { connectResult = completion.result }
        }
        #expect(connectResult == 0)
    }

    @Test func healingWithinTheTimeoutDeliversTheHeldBytesInOrder() throws {
        let harness = NetworkHarness(seed: 2, faults: .none)
        let (client, server) = try harness.connect()
        let first: [UInt8] = [1, 2, 3, 4], second: [UInt8] = [5, 6, 7, 8]
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: 64, alignment: 8)
        defer { incoming.deallocate() }
        harness.network.blockLink(from: "a", to: "b")
        try first.withUnsafeBytes { one in
            try second.withUnsafeBytes { two in
                try harness.a.submitSend(client, one, token: IOToken(12))
                try harness.a.submitSend(client, two, token: IOToken(13))
                try harness.b.submitReceive(server, into: incoming, token: IOToken(22))
                var receivedBytes: [UInt8] = []
                harness.idle(200_000_000) { _, completion in
                    if completion.token == IOToken(22) { receivedBytes.append(contentsOf: incoming[0..<Int(completion.result)]) }
                }
                #expect(receivedBytes.isEmpty, "nothing crosses a blocked link")
                harness.network.healLink(from: "a", to: "b")
                try harness.run(until: { receivedBytes.count == 8 }) { _, completion in
                    if completion.token == IOToken(22) {
                        receivedBytes.append(contentsOf: incoming[0..<Int(completion.result)])
                        if receivedBytes.count < 8 { try harness.b.submitReceive(server, into: incoming, token: IOToken(22)) }
                    }
                }
                #expect(receivedBytes == first + second)
            }
        }
        #expect(harness.network.connectionsCut == 0)
    }

    @Test func aOneWayLinkCarriesTheOtherDirection() throws {
        let harness = NetworkHarness(seed: 3, faults: .none)
        let (client, server) = try harness.connect()
        harness.network.blockLink(from: "a", to: "b")
        let payload: [UInt8] = [9, 9, 9]
        let incomingA = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        let incomingB = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { incomingA.deallocate(); incomingB.deallocate() }
        var aGot: Int32?, bGot: Int32?
        try payload.withUnsafeBytes { bytes in
            try harness.b.submitSend(server, bytes, token: IOToken(1))
            try harness.a.submitSend(client, bytes, token: IOToken(2))
            try harness.a.submitReceive(client, into: incomingA, token: IOToken(3))
            try harness.b.submitReceive(server, into: incomingB, token: IOToken(4))
            harness.idle(100_000_000) { _, completion in
                if completion.token == IOToken(3) { aGot = completion.result }
                if completion.token == IOToken(4) { bGot = completion.result }
            }
        }
        #expect(aGot == 3, "b → a still flows")
        #expect(bGot == nil, "a → b is held")
    }

    @Test func orderlyCloseEndsTheStreamAndAConnectWithoutListenerIsRefused() throws {
        let harness = NetworkHarness(seed: 4)
        let (client, server) = try harness.connect()
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { incoming.deallocate() }
        try harness.b.submitReceive(server, into: incoming, token: IOToken(5))
        harness.a.close(client)
        var result: Int32?
        harness.run(until: { result != nil }) { _, completion in result = completion.result }
        #expect(result == 0)

        _ = try harness.a.submitConnect(host: "b", port: 9999, token: IOToken(6))
        var refused: IOCompletion?
        harness.run(until: { refused != nil }) { _, completion in refused = completion }
        #expect(refused?.error == IOError(.connect, errno: Errno.connectionRefused))
    }

    @Test func aReaderThatStopsBackPressuresTheWriter() throws {
        let harness = NetworkHarness(seed: 5, faults: SimulatedNetworkFaults(pipeCapacityBytes: 1000))
        let (client, _) = try harness.connect()
        let payload = [UInt8](repeating: 1, count: 600)
        var results: [Int32] = []
        try payload.withUnsafeBytes { bytes in
            try harness.a.submitSend(client, bytes, token: IOToken(1))
            try harness.a.submitSend(client, bytes, token: IOToken(2))
            try harness.a.submitSend(client, bytes, token: IOToken(3))
            harness.idle(1_000_000_000) { _, completion in results.append(completion.result) }
        }
        #expect(results == [600, 400], "the pipe takes 1000 bytes; the third send waits for a reader")
    }

    @Test func aCrashedProcessResetsItsPeersConnections() throws {
        let harness = NetworkHarness(seed: 6)
        let (_, server) = try harness.connect()
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: 8, alignment: 8)
        defer { incoming.deallocate() }
        try harness.b.submitReceive(server, into: incoming, token: IOToken(8))
        harness.a.crash()
        var result: Int32?
        harness.run(until: { result != nil }) { _, completion in result = completion.result }
        #expect(result == -Errno.connectionReset)
        let restarted = harness.network.makeTransport(host: "a")
        #expect(!restarted.isCrashed)
    }

    /// A busy scenario with every fault on: many connections, random cuts, long tails.
    static func faultyHistory(seed: UInt64) throws -> [String] {
        let faults = SimulatedNetworkFaults(latencyJitterNanos: 2_000_000, latencyTailChance: 0.1,
                                            latencyTailMaxNanos: 100_000_000, connectionCutChance: 0.02)
        let harness = NetworkHarness(seed: seed, faults: faults)
        let listener = try harness.b.listen(host: "b", port: 7000)
        let payload = [UInt8](repeating: 3, count: 100)
        let incoming = UnsafeMutableRawBufferPointer.allocate(byteCount: 4096, alignment: 8)
        defer { incoming.deallocate() }
        try payload.withUnsafeBytes { bytes in
            var clients: [ConnectionID] = []
            for index in 0..<10 {
                try harness.b.submitAccept(listener, token: IOToken(1000 + UInt64(index)))
                clients.append(try harness.a.submitConnect(host: "b", port: 7000, token: IOToken(UInt64(index))))
            }
            var completions = 0
            try harness.run(limitNanos: 5_000_000_000, until: { completions > 2000 }) { side, completion in
                completions += 1
                guard completion.succeeded else { return }
                let token = completion.token.rawValue
                if side === harness.b && completion.operation == .accept {
                    try harness.b.submitReceive(ConnectionID(rawValue: completion.result), into: incoming, token: IOToken(2000 + UInt64(completion.result)))
                } else if side === harness.b && completion.operation == .receive && completion.result > 0 {
                    try harness.b.submitReceive(ConnectionID(rawValue: Int32(token - 2000)), into: incoming, token: completion.token)
                } else if side === harness.a && (completion.operation == .connect || completion.operation == .send) {
                    try harness.a.submitSend(clients[Int(token)], bytes, token: completion.token)
                }
            }
        }
        return harness.trace
    }

    @Test func theSameSeedGivesTheSameHistoryAndAnotherSeedAnother() throws {
        let first = try Self.faultyHistory(seed: 42)
        let again = try Self.faultyHistory(seed: 42)
        let other = try Self.faultyHistory(seed: 43)
        #expect(first.count > 100)
        #expect(first == again)
        #expect(first != other)
        #expect(first.contains { $0.hasSuffix("-\(Errno.connectionReset)") }, "random cuts happened")
    }
}
