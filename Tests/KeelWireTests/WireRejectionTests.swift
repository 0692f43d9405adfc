import KeelCore
import KeelWire
import Testing

/// Every validation rule rejects with its own typed reason.
@Suite struct WireRejectionTests {
    private let heartbeat = encoded { HeartbeatFrame.encode(into: $0, term: Term(5), leaderCommit: LogPosition(8)) }

    @Test func fewerBytesThanAHeader() {
        #expect(rejection(of: []) == .tooShort(length: 0, minimum: 8))
        #expect(rejection(of: Array(heartbeat[0..<7])) == .tooShort(length: 7, minimum: 8))
    }

    @Test func declaredLengthMustMatchTheBytes() {
        #expect(rejection(of: Array(heartbeat[0..<20])) == .lengthMismatch(declared: 24, actual: 20))
        #expect(rejection(of: heartbeat + [0]) == .lengthMismatch(declared: 24, actual: 25))
    }

    @Test func fixedLayoutMustBeComplete() {
        // A heartbeat whose header honestly says 16 bytes is still too short for its layout.
        var short = Array(heartbeat[0..<16])
        short[0] = 16
        #expect(rejection(of: short) == .tooShort(length: 16, minimum: 24))
        // …and one with extra bytes is not a heartbeat either.
        var long = heartbeat + [0, 0, 0, 0, 0, 0, 0, 0]
        long[0] = 32
        #expect(rejection(of: long) == .lengthMismatch(declared: 24, actual: 32))
    }

    @Test func declaredLengthAboveTheProtocolLimit() {
        var bytes = heartbeat
        bytes.replaceSubrange(0..<4, with: [0xFF, 0xFF, 0xFF, 0x7F])
        #expect(rejection(of: bytes) == .tooLong(length: 0x7FFF_FFFF, maximum: WireProtocol.maxFrameLengthBytes))
    }

    @Test func versionTypeAndFlags() {
        var wrongVersion = heartbeat
        wrongVersion[4] = 3
        #expect(rejection(of: wrongVersion) == .unsupportedVersion(3))
        var unknownType = heartbeat
        unknownType[5] = 0x7E
        #expect(rejection(of: unknownType) == .unknownType(0x7E))
        var zeroType = heartbeat
        zeroType[5] = 0
        #expect(rejection(of: zeroType) == .unknownType(0))
        var flags = heartbeat
        flags[6] = 0x01
        #expect(rejection(of: flags) == .unknownFlags(1, type: .heartbeat))
        var voteFlags = encoded { VoteResponseFrame.encode(into: $0, term: Term(1), preVote: true, granted: true) }
        voteFlags[7] = 0x80
        #expect(rejection(of: voteFlags) == .unknownFlags(0x8000, type: .voteResponse))
    }

    @Test func typedDecoderRefusesAnotherType() {
        heartbeat.withUnsafeBytes { raw in
            #expect(throws: WireRejection.unexpectedType(.heartbeat, expected: .timeoutNow)) { try TimeoutNowFrame(validating: raw) }
        }
    }

    @Test func negativeFieldsAreOutOfRange() {
        var bytes = heartbeat
        bytes[23] = 0x80  // leaderCommit's sign bit
        #expect(rejection(of: bytes)?.reason == .fieldOutOfRange)
        #expect(rejection(of: bytes) == .fieldOutOfRange(field: "leaderCommit", value: Int64(bitPattern: 0x8000_0000_0000_0008)))
    }

    @Test func appendEntriesRangeMustMatchItsBytes() {
        let good = [UInt8](repeating: 7, count: 8).withUnsafeBytes { log in
            encoded {
                AppendEntriesFrame.encode(
                    into: $0, term: Term(3), prevPosition: LogPosition(64), prevTerm: Term(2), endPosition: LogPosition(72),
                    entryTerm: Term(3), leaderCommit: .zero, logBytes: log)
            }
        }
        #expect(rejection(of: good) == nil)
        var endTooFar = good
        endTooFar[32] = 80  // endPosition 80: the range says 16 bytes, the frame has 8
        #expect(rejection(of: endTooFar) == .lengthMismatch(declared: 72, actual: 64))
        var endBeforePrev = good
        endBeforePrev[32] = 60
        #expect(rejection(of: endBeforePrev) == .fieldOutOfRange(field: "endPosition", value: 60))
        var entryTermAboveTerm = good
        entryTermAboveTerm[40] = 4
        #expect(rejection(of: entryTermAboveTerm) == .fieldOutOfRange(field: "entryTerm", value: 4))
        var prevTermAboveEntryTerm = good
        prevTermAboveEntryTerm[24] = 3
        prevTermAboveEntryTerm[40] = 2
        #expect(rejection(of: prevTermAboveEntryTerm) == .fieldOutOfRange(field: "entryTerm", value: 2))
        // A huge range that would overflow an Int if added carelessly.
        var hugeRange = good
        hugeRange.replaceSubrange(32..<40, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        #expect(rejection(of: hugeRange) == .fieldOutOfRange(field: "endPosition", value: Int64.max))
    }

    @Test func appendResponseOrdering() {
        var bytes = encoded {
            AppendResponseFrame.encode(
                into: $0, term: Term(1), success: true, catchingUp: false, appendedPosition: LogPosition(10),
                persistedPosition: LogPosition(10), hintPosition: .zero, hintTerm: .zero, hintTermStart: .zero, bootID: 1)
        }
        bytes[24] = 11  // persisted beyond appended
        #expect(rejection(of: bytes) == .fieldOutOfRange(field: "persistedPosition", value: 11))
    }

    @Test func enumeratedCodesMustBeKnown() {
        var closed = encoded {
            SessionClosedFrame.encode(into: $0, sessionID: 1, timestamp: .zero, reason: .clientClosed)
        }
        closed[24] = 99
        #expect(rejection(of: closed) == .fieldOutOfRange(field: "reason", value: 99))
        var refused = encoded {
            HandshakeRefusedFrame.encode(into: $0, mismatch: .clusterID, expected: 1, actual: 2, detail: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        refused[8] = 0
        #expect(rejection(of: refused) == .fieldOutOfRange(field: "mismatch", value: 0))
        var admin = encoded {
            AdminRequestFrame.encode(into: $0, correlationID: 1, requestType: .describe, body: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        admin[16] = 0x40
        #expect(rejection(of: admin) == .fieldOutOfRange(field: "requestType", value: 0x40))
    }

    @Test func reservedBytesMustBeZero() {
        var accepted = encoded { ConnectAcceptedFrame.encode(into: $0, correlationID: 1, leaderTerm: Term(1), leaderMemberID: MemberID(0)) }
        accepted[30] = 1
        #expect(rejection(of: accepted) == .fieldOutOfRange(field: "reserved", value: 1))
        var handshake = encoded { HandshakeFrame.encode(into: $0, clusterID: 1, configurationDigest: 2, memberID: MemberID(1)) }
        handshake[31] = 5
        #expect(rejection(of: handshake) == .fieldOutOfRange(field: "reserved", value: 5))
    }

    @Test func variableLengthsAreBounded() {
        // A connect claiming 5000 bytes of credentials (over the 4096 limit) that are really there.
        var connect = [UInt8](repeating: 0, count: 24 + 5000)
        connect.replaceSubrange(0..<8, with: hex("a0130000 02 01 0000"))
        connect.replaceSubrange(16..<20, with: hex("88130000"))
        #expect(rejection(of: connect) == .fieldOutOfRange(field: "credentialsLength", value: 5000))
        // A redirect with an empty host, and one with a space in it.
        let host = Array("a b".utf8)
        var redirect = host.withUnsafeBytes { hostBytes in
            encoded {
                RedirectFrame.encode(into: $0, correlationID: 1, leaderTerm: .zero, leaderMemberID: MemberID(0), host: hostBytes, port: 1)
            }
        }
        #expect(rejection(of: redirect) == .fieldOutOfRange(field: "host", value: 0x20))
        redirect[28] = 0
        redirect[29] = 0
        #expect(rejection(of: redirect) == .fieldOutOfRange(field: "port", value: 0))
        var detail = Array("ok\u{7}".utf8).withUnsafeBytes { text in
            encoded { ConnectRejectedFrame.encode(into: $0, correlationID: 1, reason: .shuttingDown, detail: text) }
        }
        #expect(rejection(of: detail) == .fieldOutOfRange(field: "detail", value: 7))
        detail[18] = 2  // detail length says 2, but 3 bytes follow
        #expect(rejection(of: detail) == .lengthMismatch(declared: 26, actual: 27))
    }

    @Test func snapshotChunkChecksumAndBounds() {
        let chunk = Array("snapshot".utf8)
        let good = chunk.withUnsafeBytes { chunkBytes in
            encoded {
                SnapshotChunkFrame.encode(
                    into: $0, term: Term(2), snapshotID: 3, snapshotPosition: LogPosition(100), snapshotTerm: Term(2),
                    totalBytes: 20, offset: 12, chunk: chunkBytes)
            }
        }
        #expect(rejection(of: good) == nil)
        var flipped = good
        flipped[70] ^= 0x01
        #expect(rejection(of: flipped)?.reason == .checksumMismatch)
        var pastTotal = good
        pastTotal[48] = 13  // offset 13 + 8 bytes > 20
        #expect(rejection(of: pastTotal) == .fieldOutOfRange(field: "chunkLength", value: 8))
        var offsetPastTotal = good
        offsetPastTotal[48] = 21
        #expect(rejection(of: offsetPastTotal) == .fieldOutOfRange(field: "offset", value: 21))
    }

    @Test func sessionIdentifiersStartAtOne() {
        var request = encoded { RequestFrame.encode(into: $0, sessionID: 1, sequence: 1, payload: UnsafeRawBufferPointer(start: nil, count: 0)) }
        request[8] = 0
        #expect(rejection(of: request) == .fieldOutOfRange(field: "sessionID", value: 0))
        request[8] = 1
        request[16] = 0
        #expect(rejection(of: request) == .fieldOutOfRange(field: "sequence", value: 0))
    }

    @Test func rejectionReasonsAreDistinctAndDescribed() {
        #expect(Set(WireRejectionReason.allCases.map(\.rawValue)).count == WireRejectionReason.allCases.count)
        #expect(WireRejection.tooLong(length: 9, maximum: 8).description.contains("too long"))
        #expect(WireRejection.unknownType(0x7E).reason == .unknownType)
    }
}
