import KeelCore
import KeelExamples
import KeelRuntime
import KeelService
import KeelSimulation
import Testing

/// Collects what a service offers, as the runtime's egress would.
final class CollectingEgress: SessionEgress {
    var messages: [[UInt8]] = []
    func offer(sessionId: Int64, sequence: Int64, timestamp: ClusterTime, message: UnsafeRawBufferPointer) -> OfferResult {
        messages.append(Array(message))
        return .accepted
    }
}

@Suite("Example services: key-value store and bank")
struct ExampleServiceTests {
    func send<S: ClusteredService>(_ service: inout S, _ bytes: [UInt8], egress: CollectingEgress, session: ClientSession) -> [UInt8] {
        bytes.withUnsafeBytes { service.onSessionMessage(session, timestamp: ClusterTime(rawValue: 1), message: $0) }
        return egress.messages.removeLast()
    }

    @Test("key-value: put, get, delete and compare-and-set answer as documented; every request round-trips its encoding")
    func keyValueOperations() throws {
        var store = KeyValueService()
        let key = Array("k".utf8), one = Array("1".utf8), two = Array("2".utf8)
        #expect(store.apply(.get(key: key)) == KeyValueResponse(status: .notFound))
        #expect(store.apply(.compareAndSet(key: key, expected: one, new: two)) == KeyValueResponse(status: .mismatch))
        #expect(store.apply(.compareAndSet(key: key, expected: nil, new: one)) == KeyValueResponse(status: .ok))
        #expect(store.apply(.compareAndSet(key: key, expected: nil, new: two)) == KeyValueResponse(status: .mismatch, value: one))
        #expect(store.apply(.compareAndSet(key: key, expected: one, new: two)) == KeyValueResponse(status: .ok))
        #expect(store.apply(.get(key: key)) == KeyValueResponse(status: .ok, value: two))
        #expect(store.apply(.put(key: key, value: [])) == KeyValueResponse(status: .ok))
        #expect(store.apply(.get(key: key)) == KeyValueResponse(status: .ok, value: []))
        #expect(store.apply(.delete(key: key)) == KeyValueResponse(status: .ok))
        #expect(store.apply(.delete(key: key)) == KeyValueResponse(status: .notFound))
        let requests: [KeyValueRequest] = [
            .put(key: key, value: Array(repeating: 7, count: 300)), .get(key: []), .delete(key: two),
            .compareAndSet(key: key, expected: nil, new: one), .compareAndSet(key: key, expected: [], new: []),
        ]
        for request in requests {
            #expect(try request.encoded().withUnsafeBytes { try KeyValueRequest.decode($0) } == request)
        }
        let response = KeyValueResponse(status: .mismatch, value: one)
        #expect(try KeyValueResponse.decode(response.encoded()) == response)
    }

    @Test("key-value snapshot: key-ordered length-prefixed fields (staged 64 KiB at a time, large values straight through), byte for byte what one write per field gives; it restores the same state")
    func keyValueSnapshotBytes() throws {
        var store = KeyValueService()
        var random = SeededRandom(seed: 7)
        for index in 0..<3000 {
            let keyBytes = Int(random.next() % 24)
            let key = (0..<keyBytes).map { _ in UInt8(truncatingIfNeeded: random.next() % 3) } + [UInt8(index & 0xFF), UInt8(index >> 8)]
            let valueBytes = index % 500 == 0 ? 70_000 + index : Int(random.next() % 300)
            _ = store.apply(.put(key: key, value: (0..<valueBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ index) }))
        }
        _ = store.apply(.put(key: [], value: [9]))
        let writer = InMemorySnapshotWriter()
        try store.onTakeSnapshot(writer)
        // The format, written the plain way: requests applied, count, then each key and value in key order.
        let expected = InMemorySnapshotWriter()
        try expected.write(store.requestsApplied)
        try expected.write(Int64(store.entries.count))
        for key in store.entries.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            try key.withUnsafeBytes { try expected.writeLengthPrefixed($0) }
            try store.entries[key]!.withUnsafeBytes { try expected.writeLengthPrefixed($0) }
        }
        #expect(writer.bytes == expected.bytes)
        #expect(writer.writes < expected.writes / 20, "\(writer.writes) writer calls for \(store.entries.count) entries")
        var restored = KeyValueService()
        try restored.onStart(cluster: Cluster(memberId: MemberID(0)), snapshot: InMemorySnapshotReader(bytes: writer.bytes, serviceVersion: store.snapshotVersion))
        #expect(restored.entries == store.entries && restored.requestsApplied == store.requestsApplied)
    }

    @Test("key-value and bank: malformed request bytes get an error response and leave the state (digest) unchanged")
    func malformedRequestsChangeNothing() throws {
        let egress = CollectingEgress()
        let session = ClientSession(id: 1, egress: egress)
        var store = KeyValueService()
        _ = send(&store, KeyValueRequest.put(key: [1, 2], value: [3]).encoded(), egress: egress, session: session)
        let malformedKeyValue: [[UInt8]] = [
            [], [9, 0, 0], [1, 2, 0], [1, 2, 0, 1, 0, 0, 0, 1, 2], KeyValueRequest.get(key: [1]).encoded() + [0],
            [1, 0xff, 0xff, 0, 0, 0, 0], [4, 1, 0, 0xfe, 0xff, 0xff, 0xff, 0, 0, 0, 0, 1],
        ]
        for bytes in malformedKeyValue {
            let before = store.stateDigest(), entries = store.entries
            let response = try KeyValueResponse.decode(send(&store, bytes, egress: egress, session: session))
            #expect(response.status == .malformed, "\(bytes)")
            #expect(!response.value.isEmpty, "the error names the problem")
            #expect(store.entries == entries)
            #expect(store.stateDigest().value != before.value, "the digest counts requests applied")
        }
        var bank = BankService()
        _ = send(&bank, BankRequest.open(account: 1).encoded(), egress: egress, session: session)
        _ = send(&bank, BankRequest.deposit(account: 1, amount: 100).encoded(), egress: egress, session: session)
        let malformedBank: [[UInt8]] = [[], [0], [10], [2, 1, 0, 0], BankRequest.deposit(account: 1, amount: 5).encoded() + [0], [9, 0]]
        for bytes in malformedBank {
            let before = bank.stateDigest()
            #expect(try BankResponse.decode(send(&bank, bytes, egress: egress, session: session)).status == .malformed, "\(bytes)")
            #expect(bank.stateDigest() == before)
        }
        #expect(bank.accounts[1]?.balance == 100 && bank.accounts[1]?.held == 0)
    }

    @Test("bank: withdrawals and transfers that would overdraw are refused; transfers are atomic; holds reserve money")
    func bankRules() throws {
        var bank = BankService()
        let now = ClusterTime(rawValue: 1_000)
        #expect(bank.apply(.open(account: 1), at: now).status == .ok)
        #expect(bank.apply(.open(account: 1), at: now).status == .accountExists)
        #expect(bank.apply(.open(account: 2), at: now).status == .ok)
        #expect(bank.apply(.deposit(account: 1, amount: 100), at: now) == BankResponse(status: .ok, first: 100))
        #expect(bank.apply(.deposit(account: 1, amount: -5), at: now).status == .invalidAmount)
        #expect(bank.apply(.withdraw(account: 1, amount: 101), at: now).status == .insufficientFunds)
        #expect(bank.apply(.transfer(from: 1, to: 2, amount: 101), at: now).status == .insufficientFunds)
        #expect(bank.apply(.transfer(from: 1, to: 3, amount: 10), at: now).status == .noSuchAccount)
        #expect(bank.apply(.transfer(from: 1, to: 2, amount: 40), at: now) == BankResponse(status: .ok, first: 60))
        #expect(bank.apply(.hold(hold: 9, account: 1, amount: 50, durationNanos: 10), at: now).status == .ok)
        #expect(bank.apply(.withdraw(account: 1, amount: 20), at: now).status == .insufficientFunds, "50 of 60 are held")
        #expect(bank.apply(.balance(account: 1), at: now) == BankResponse(status: .ok, first: 60, second: 50))
        #expect(bank.apply(.capture(hold: 9, to: 2), at: now) == BankResponse(status: .ok, first: 90))
        #expect(bank.apply(.capture(hold: 9, to: 2), at: now).status == .noSuchHold)
        #expect(bank.apply(.total, at: now) == BankResponse(status: .ok, first: 100, second: 2))
        for request: BankRequest in [.open(account: 5), .hold(hold: 1, account: 2, amount: 3, durationNanos: 4), .capture(hold: 1, to: 2), .release(hold: 7), .total] {
            #expect(try request.encoded().withUnsafeBytes { try BankRequest.decode($0) } == request)
        }
    }

    @Test("bank on three simulated members: holds expire by timer when not captured; every replica ends with the same digest and the money is conserved")
    func bankHoldsExpireOnEveryReplica() throws {
        let cluster = try SimulatedClusterHarness<BankService>(seed: 17) { _ in BankService() }
        #expect(try cluster.run(maxRounds: 5_000) { cluster.leaders.count == 1 })
        let client = SimulatedTestClient(network: cluster.network, endpoints: cluster.endpoints, time: cluster.time)
        client.start(at: 0)
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.sessionID != nil })
        var requests: [BankRequest] = (1...10).flatMap { [BankRequest.open(account: $0), .deposit(account: $0, amount: 1_000)] }
        for hold in 1...40 { requests.append(.hold(hold: Int64(hold), account: Int64(hold % 10 + 1), amount: 20, durationNanos: Int64(hold) * 20_000_000)) }
        for hold in stride(from: 1, through: 40, by: 4) { requests.append(.capture(hold: Int64(hold), to: 1)) }
        for request in requests { client.request(request.encoded()) }
        #expect(try cluster.run(maxRounds: 5_000, client: client) { client.responses.count == requests.count })
        #expect(client.responses.allSatisfy { (try? BankResponse.decode($0.payload).status) == .ok })
        #expect(try cluster.run(maxRounds: 5_000) { cluster.members.allSatisfy { $0.service.service.holds.isEmpty && $0.service.appliedPosition == cluster.members[0].service.appliedPosition } })
        let banks = cluster.members.map(\.service.service)
        #expect(banks.allSatisfy { $0.holdsExpired == 30 }, "\(banks.map(\.holdsExpired))")
        #expect(Set(banks.map { $0.stateDigest() }).count == 1)
        #expect(banks.allSatisfy { $0.totalMoney == 10_000 && $0.accounts.values.allSatisfy { $0.held == 0 } })
    }
}
