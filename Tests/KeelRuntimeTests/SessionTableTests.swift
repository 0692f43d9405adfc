import KeelCore
import Testing

@testable import KeelRuntime

/// The replicated session table and its response windows: what a retried request gets, what is
/// evicted when, and the serialised form.
@Suite struct SessionTableTests {
    func respond(_ table: inout SessionTable, _ id: Int64, _ sequence: Int64, _ bytes: [UInt8]) {
        bytes.withUnsafeBytes { table.recordResponse(sessionID: id, sequence: sequence, timestamp: ClusterTime(rawValue: sequence), payload: $0) }
    }

    func admit(_ table: inout SessionTable, _ id: Int64, _ sequence: Int64) -> RequestAdmission {
        table.admit(sessionID: id, sequence: sequence, timestamp: .zero)
    }

    func responses(_ table: SessionTable, _ id: Int64, _ sequence: Int64) -> [[UInt8]] {
        var out: [[UInt8]] = []
        table[id]?.window.forEachResponse(of: sequence) { _, payload in out.append(Array(payload)) }
        return out
    }

    @Test func requestsAreAdmittedInOrderAndRetriesAreDuplicates() {
        var table = SessionTable(limits: ResponseWindowLimits(requestsMax: 4, bytesMax: 1024))
        let opened = table.open(id: 7, secret: 99, principal: [1], timestamp: ClusterTime(rawValue: 1))
        #expect(opened)
        let reopened = table.open(id: 7, secret: 1, principal: [], timestamp: ClusterTime(rawValue: 2))
        #expect(!reopened)
        #expect(table[7]?.secret == 99)
        #expect(admit(&table, 7, 1) == .apply)
        respond(&table, 7, 1, [10])
        respond(&table, 7, 1, [11])
        #expect(admit(&table, 7, 2) == .apply)
        #expect(admit(&table, 7, 1) == .duplicate)
        #expect(admit(&table, 7, 2) == .duplicate)
        #expect(responses(table, 7, 1) == [[10], [11]])
        #expect(responses(table, 7, 2) == [])
        #expect(admit(&table, 7, 4) == .outOfOrder(expected: 3))
        #expect(table[7]?.lastAppliedSequence == 2)
        #expect(admit(&table, 8, 1) == .unknownSession)
        let closed = table.close(id: 7)
        #expect(closed?.id == 7)
        #expect(admit(&table, 7, 3) == .unknownSession)
    }

    @Test func theWindowKeepsTheLastRequestsByCount() {
        var table = SessionTable(limits: ResponseWindowLimits(requestsMax: 3, bytesMax: 1 << 20))
        table.open(id: 1, secret: 0, principal: [], timestamp: .zero)
        for sequence in Int64(1)...10 {
            #expect(admit(&table, 1, sequence) == .apply)
            respond(&table, 1, sequence, [UInt8(sequence)])
        }
        #expect(table[1]?.window.startSequence == 8)
        #expect(responses(table, 1, 8) == [[8]] && responses(table, 1, 10) == [[10]])
        #expect(admit(&table, 1, 8) == .duplicate)
        #expect(admit(&table, 1, 7) == .responseNoLongerAvailable(expected: 11))
        #expect(table[1]?.window.retainedResponses == 3)
    }

    @Test func theWindowKeepsWholeRequestsWithinItsBytes() {
        var table = SessionTable(limits: ResponseWindowLimits(requestsMax: 100, bytesMax: 10))
        table.open(id: 1, secret: 0, principal: [], timestamp: .zero)
        _ = table.admit(sessionID: 1, sequence: 1, timestamp: .zero)
        respond(&table, 1, 1, [1, 1, 1, 1])
        _ = table.admit(sessionID: 1, sequence: 2, timestamp: .zero)
        respond(&table, 1, 2, [2, 2, 2, 2])
        respond(&table, 1, 2, [2, 2])
        // 10 bytes held; 3 more evict request 1 (all of it), not part of request 2.
        _ = table.admit(sessionID: 1, sequence: 3, timestamp: .zero)
        respond(&table, 1, 3, [3, 3, 3])
        #expect(table[1]?.window.startSequence == 2)
        #expect(table[1]?.window.retainedBytes == 9)
        #expect(responses(table, 1, 2) == [[2, 2, 2, 2], [2, 2]])
        #expect(admit(&table, 1, 1) == .responseNoLongerAvailable(expected: 4))
        // A response larger than the whole window drops its request (never half of its responses).
        _ = table.admit(sessionID: 1, sequence: 4, timestamp: .zero)
        respond(&table, 1, 4, [4])
        respond(&table, 1, 4, [UInt8](repeating: 4, count: 11))
        #expect(table[1]?.window.startSequence == 5)
        #expect(admit(&table, 1, 4) == .responseNoLongerAvailable(expected: 5))
        respond(&table, 1, 4, [4])
        #expect(table[1]?.window.retainedResponses == 0)
    }

    @Test func aLongRunReusesTheWindowBuffer() {
        var table = SessionTable(limits: ResponseWindowLimits(requestsMax: 8, bytesMax: 4096))
        table.open(id: 1, secret: 0, principal: [], timestamp: .zero)
        for sequence in Int64(1)...5000 {
            _ = table.admit(sessionID: 1, sequence: sequence, timestamp: .zero)
            respond(&table, 1, sequence, [UInt8](repeating: UInt8(truncatingIfNeeded: sequence), count: Int(sequence % 300)))
            if sequence % 7 == 0 { respond(&table, 1, sequence, []) }
        }
        let window = table[1]!.window
        #expect(window.startSequence == 4993)
        #expect(responses(table, 1, 5000) == [[UInt8](repeating: UInt8(truncatingIfNeeded: 5000), count: 5000 % 300)])
        #expect(window.retainedBytes <= 4096)
    }

    /// A full window under a steady flow (the echo benchmark's shape) compacts only now and then;
    /// every response it holds must still be the one recorded, across many compactions and growths.
    @Test func aFullWindowUnderSteadyFlowKeepsEveryHeldResponseIntact() {
        var table = SessionTable(limits: ResponseWindowLimits(requestsMax: 1024, bytesMax: 1 << 20))
        table.open(id: 1, secret: 0, principal: [], timestamp: .zero)
        func payload(_ sequence: Int64) -> [UInt8] { (0..<32).map { UInt8(truncatingIfNeeded: sequence &* 31 &+ Int64($0)) } }
        for sequence in Int64(1)...20_000 {
            _ = table.admit(sessionID: 1, sequence: sequence, timestamp: .zero)
            respond(&table, 1, sequence, payload(sequence))
            if sequence % 4999 == 0 {
                for held in (sequence - 1023)...sequence { #expect(responses(table, 1, held) == [payload(held)], "request \(held)") }
            }
        }
        #expect(table[1]?.window.startSequence == Int64(18_977))
        #expect(table[1]?.window.retainedBytes == Int(32_768))
        for held in Int64(20_000 - 1023)...20_000 where responses(table, 1, held) != [payload(held)] {
            Issue.record("request \(held) holds the wrong bytes")
        }
    }

    @Test func serialisedTablesReadBackEqual() throws {
        var table = SessionTable(limits: ResponseWindowLimits(requestsMax: 2, bytesMax: 64))
        table.open(id: 5, secret: 0xDEAD, principal: Array("alice".utf8), timestamp: ClusterTime(rawValue: 3))
        table.open(id: 2, secret: 0xBEEF, principal: [], timestamp: ClusterTime(rawValue: 4))
        for sequence in Int64(1)...3 {
            _ = table.admit(sessionID: 5, sequence: sequence, timestamp: ClusterTime(rawValue: 10 + sequence))
            respond(&table, 5, sequence, [UInt8(sequence), 0xFF])
        }
        let bytes = table.serialized()
        let copy = try SessionTable(serialized: bytes, limits: table.limits)
        #expect(copy == table)
        #expect(copy.serialized() == bytes)
        #expect(copy[5]?.principal == Array("alice".utf8) && copy[5]?.lastAppliedSequence == 3)
        // Same content reached another way (different buffer layout) is still equal.
        var other = copy
        _ = other.admit(sessionID: 2, sequence: 1, timestamp: .zero)
        #expect(other != table)
        for cut in [0, 3, 20, bytes.count - 1] {
            #expect(throws: SessionTableDecodingError.self) { try SessionTable(serialized: Array(bytes[0..<cut]), limits: table.limits) }
        }
        var badMagic = bytes
        badMagic[0] ^= 1
        #expect(throws: SessionTableDecodingError.self) { try SessionTable(serialized: badMagic, limits: table.limits) }
    }

    /// The id → slot index against a dictionary, through random opens and closes (ids of the shape
    /// the leader makes, `term << 32 | counter`, and clustered ones that collide in the probe runs),
    /// across growths and backward-shift removals.
    @Test func theSessionIndexAgreesWithADictionary() {
        var random = SeededRandom(seed: 7)
        var index = SessionIndex()
        var model: [Int64: Int] = [:]
        var nextSlot = 0
        for step in 0..<20_000 {
            let id: Int64 = step % 3 == 0 ? Int64(random.next() % 64) + 1 : Int64(random.next() % 4 + 1) << 32 | Int64(random.next() % 300)
            if let slot = model[id] {
                #expect(index.slot(of: id) == slot)
                if random.next() % 2 == 0 {
                    index.remove(id)
                    model[id] = nil
                }
            } else {
                #expect(index.slot(of: id) == nil, "step \(step): \(id) not indexed")
                if model.count < 600 {
                    index.insert(id, slot: nextSlot)
                    model[id] = nextSlot
                    nextSlot += 1
                }
            }
        }
        #expect(index.count == model.count)
        for (id, slot) in model where index.slot(of: id) != slot { Issue.record("\(id) should be at slot \(slot)") }
    }

    /// Closed sessions' slots are reused, and a table reached through different open/close
    /// histories (so different slots) is equal when the same sessions are open alike.
    @Test func slotsAreReusedAndEqualityIgnoresThem() throws {
        var table = SessionTable(limits: ResponseWindowLimits(requestsMax: 4, bytesMax: 1024))
        for id in Int64(1)...5 { table.open(id: id, secret: UInt64(id), principal: [], timestamp: .zero) }
        let slotOfFour = table.slot(of: 4)
        table.close(id: 2)
        table.close(id: 4)
        table.open(id: 9, secret: 9, principal: [], timestamp: .zero)
        #expect(table.slot(of: 9) == slotOfFour)
        #expect(table.slotCount == 5 && table.count == 4)
        #expect(table.sortedIDs == [1, 3, 5, 9])
        #expect(admit(&table, 9, 1) == .apply)
        #expect(admit(&table, 4, 1) == .unknownSession)
        var other = SessionTable(limits: table.limits)
        for id: Int64 in [9, 5, 3, 1] { other.open(id: id, secret: UInt64(id), principal: [], timestamp: .zero) }
        #expect(other != table)
        #expect(admit(&other, 9, 1) == .apply)
        #expect(other == table)
        #expect(try SessionTable(serialized: table.serialized(), limits: table.limits) == other)
        #expect(other.serialized() == table.serialized())
    }

    @Test func openEntryPayloadRoundTrips() {
        var buffer = [UInt8](repeating: 0, count: 64)
        let principal = Array("bob".utf8)
        let length = buffer.withUnsafeMutableBytes { out in
            principal.withUnsafeBytes { SessionOpenEntry.encode(into: out, secret: 42, principal: $0) }
        }
        let decoded = buffer.withUnsafeBytes { SessionOpenEntry.decode(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
        #expect(decoded?.secret == 42 && decoded?.principal == principal)
        #expect(buffer.withUnsafeBytes { SessionOpenEntry.decode(UnsafeRawBufferPointer(rebasing: $0[0..<(length - 1)])) } == nil)
    }
}
