import KeelCore
import KeelWire
import Testing

/// Golden bytes and rules of the snapshot-transfer frames (offer, ack, abort, in-place chunk).
@Suite struct SnapshotTransferFrameTests {
    @Test func offer() throws {
        let bytes = encoded {
            SnapshotOfferFrame.encode(
                into: $0, term: Term(9), snapshotID: 3, snapshotPosition: LogPosition(0x1000), snapshotTerm: Term(8), totalBytes: 0x0201_0000,
                wholeCRC: 0xA1B2_C3D4)
        }
        #expect(bytes == hex("38000000 02 39 0000  0900000000000000  0300000000000000  0010000000000000  0800000000000000  0000010200000000  D4C3B2A1 00000000"))
        try withBytes(bytes) { raw in
            let frame = try SnapshotOfferFrame(validating: raw)
            #expect(frame.term == Term(9) && frame.snapshotID == 3 && frame.snapshotPosition == LogPosition(0x1000) && frame.snapshotTerm == Term(8))
            #expect(frame.totalBytes == 0x0201_0000 && frame.wholeCRC == 0xA1B2_C3D4)
            guard case .snapshotOffer = try WireMessage(validating: raw) else {
                Issue.record("WireMessage did not dispatch 0x39 to snapshotOffer")
                return
            }
        }
        var termAbove = bytes
        termAbove[32] = 10  // snapshotTerm 10 > term 9
        #expect(throws: WireRejection.self) { try withBytes(termAbove) { raw in _ = try SnapshotOfferFrame(validating: raw) } }
        var tooShort = bytes
        for index in 40..<48 { tooShort[index] = 0 }
        tooShort[40] = 159  // a file smaller than header + trailer
        #expect(throws: WireRejection.self) { try withBytes(tooShort) { raw in _ = try SnapshotOfferFrame(validating: raw) } }
        var reserved = bytes
        reserved[53] = 1
        #expect(throws: WireRejection.self) { try withBytes(reserved) { raw in _ = try SnapshotOfferFrame(validating: raw) } }
    }

    @Test func ack() throws {
        let bytes = encoded { SnapshotAckFrame.encode(into: $0, term: Term(9), snapshotID: 3, nextOffset: 0x0102, status: .received) }
        #expect(bytes == hex("28000000 02 3A 0000  0900000000000000  0300000000000000  0201000000000000  01 00000000000000"))
        try withBytes(bytes) { raw in
            let frame = try SnapshotAckFrame(validating: raw)
            #expect(frame.term == Term(9) && frame.snapshotID == 3 && frame.nextOffset == 0x0102 && frame.status == .received)
        }
        var badStatus = bytes
        badStatus[32] = 3
        #expect(throws: WireRejection.self) { try withBytes(badStatus) { raw in _ = try SnapshotAckFrame(validating: raw) } }
        var reserved = bytes
        reserved[39] = 1
        #expect(throws: WireRejection.self) { try withBytes(reserved) { raw in _ = try SnapshotAckFrame(validating: raw) } }
    }

    @Test func abort() throws {
        let bytes = encoded { SnapshotAbortFrame.encode(into: $0, term: Term(9), snapshotID: 3, reason: .verificationFailed) }
        #expect(bytes == hex("20000000 02 3B 0000  0900000000000000  0300000000000000  0200 000000000000"))
        try withBytes(bytes) { raw in
            let frame = try SnapshotAbortFrame(validating: raw)
            #expect(frame.term == Term(9) && frame.snapshotID == 3 && frame.reason == .verificationFailed)
        }
        var unknown = bytes
        unknown[24] = 0
        #expect(throws: WireRejection.self) { try withBytes(unknown) { raw in _ = try SnapshotAbortFrame(validating: raw) } }
    }

    @Test func chunkEncodedInPlaceEqualsTheCopyingEncoder() throws {
        let chunk: [UInt8] = (0..<300).map { UInt8(truncatingIfNeeded: $0 &* 7) }
        let copied = chunk.withUnsafeBytes { piece in
            encoded {
                SnapshotChunkFrame.encode(
                    into: $0, term: Term(4), snapshotID: 1, snapshotPosition: LogPosition(64), snapshotTerm: Term(4), totalBytes: 1000, offset: 100,
                    chunk: piece)
            }
        }
        let inPlace = encoded { buffer in
            chunk.withUnsafeBytes { UnsafeMutableRawBufferPointer(rebasing: buffer[64..<364]).copyMemory(from: $0) }
            return SnapshotChunkFrame.encodeInPlace(
                into: buffer, term: Term(4), snapshotID: 1, snapshotPosition: LogPosition(64), snapshotTerm: Term(4), totalBytes: 1000, offset: 100,
                chunkLength: 300)
        }
        #expect(inPlace == copied)
        try withBytes(inPlace) { raw in
            let frame = try SnapshotChunkFrame(validating: raw)
            #expect(Array(frame.chunk) == chunk && frame.offset == 100 && !frame.isLast)
        }
    }
}
