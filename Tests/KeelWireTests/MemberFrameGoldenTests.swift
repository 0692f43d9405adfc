import KeelCore
import KeelWire
import Testing

/// Golden bytes and round trips for the member frames: handshake, Raft messages, snapshot chunks.
@Suite struct MemberFrameGoldenTests {
    @Test func handshake() throws {
        let bytes = encoded {
            HandshakeFrame.encode(
                into: $0, clusterID: 0xAABB_CCDD_0011_2233, configurationDigest: 0x0102_0304_0506_0708, memberID: MemberID(2))
        }
        #expect(bytes == hex("20000000 02 20 0000  33221100ddccbbaa  0807060504030201  02000000 0200 0000"))
        try withBytes(bytes) { raw in
            let frame = try HandshakeFrame(validating: raw)
            #expect(frame.clusterID == 0xAABB_CCDD_0011_2233 && frame.configurationDigest == 0x0102_0304_0506_0708)
            #expect(frame.memberID == MemberID(2) && frame.protocolVersion == 2)
        }
    }

    @Test func handshakeOfAnotherVersionIsStillReadable() throws {
        // A future peer (header version 7) must still be decodable so it can be refused by name.
        var bytes = encoded {
            HandshakeFrame.encode(into: $0, clusterID: 1, configurationDigest: 2, memberID: MemberID(0), protocolVersion: 7)
        }
        bytes[4] = 7
        try withBytes(bytes) { raw in
            let frame = try HandshakeFrame(validating: raw)
            #expect(frame.protocolVersion == 7)
        }
        // Any other frame of that version is rejected.
        var heartbeat = encoded { HeartbeatFrame.encode(into: $0, term: Term(1), leaderCommit: .zero) }
        heartbeat[4] = 7
        #expect(rejection(of: heartbeat) == .unsupportedVersion(7))
    }

    @Test func handshakeRefused() throws {
        let bytes = Array("d".utf8).withUnsafeBytes { detail in
            encoded { HandshakeRefusedFrame.encode(into: $0, mismatch: .configurationDigest, expected: 1, actual: 2, detail: detail) }
        }
        #expect(bytes == hex("21000000 02 21 0000  0300 0100 00000000  0100000000000000  0200000000000000  64"))
        try withBytes(bytes) { raw in
            let frame = try HandshakeRefusedFrame(validating: raw)
            #expect(frame.mismatch == .configurationDigest && frame.expected == 1 && frame.actual == 2 && frame.detail == "d")
        }
    }

    @Test func memberAuthentication() throws {
        let value = (0..<32).map { UInt8($0) }
        let bytes = value.withUnsafeBytes { value in encoded { MemberAuthenticationFrame.encode(into: $0, step: .proof, value: value) } }
        #expect(bytes == hex("""
            30000000 02 22 0000  0200 000000000000
            000102030405060708090a0b0c0d0e0f 101112131415161718191a1b1c1d1e1f
            """))
        try withBytes(bytes) { raw in
            let frame = try MemberAuthenticationFrame(validating: raw)
            #expect(frame.step == .proof && Array(frame.value) == value)
        }
        var badStep = bytes
        badStep[8] = 3
        #expect(rejection(of: badStep) == .fieldOutOfRange(field: "step", value: 3))
        var reserved = bytes
        reserved[12] = 1
        #expect(rejection(of: reserved) == .fieldOutOfRange(field: "reserved", value: 1))
    }

    @Test func appendEntriesCarriesLogBytesBehindItsHeader() throws {
        let log: [UInt8] = [0xDE, 0xAD, 0xBE, 0xEF]
        let bytes = log.withUnsafeBytes { logBytes in
            encoded {
                AppendEntriesFrame.encode(
                    into: $0, term: Term(3), prevPosition: LogPosition(64), prevTerm: Term(2), endPosition: LogPosition(68),
                    entryTerm: Term(3), leaderCommit: LogPosition(32), logBytes: logBytes)
            }
        }
        #expect(bytes == hex("""
            3c000000 02 30 0000  0300000000000000  4000000000000000  0200000000000000
            4400000000000000  0300000000000000  2000000000000000  deadbeef
            """))
        try withBytes(bytes) { raw in
            guard case .appendEntries(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.term == Term(3) && frame.prevPosition == LogPosition(64) && frame.prevTerm == Term(2))
            #expect(frame.endPosition == LogPosition(68) && frame.entryTerm == Term(3) && frame.leaderCommit == LogPosition(32))
            #expect(Array(frame.logBytes) == log)
        }
        // The header alone, for a vectored send, is the same first 56 bytes.
        let header = encoded {
            AppendEntriesFrame.encodeHeader(
                into: $0, term: Term(3), prevPosition: LogPosition(64), prevTerm: Term(2), endPosition: LogPosition(68),
                entryTerm: Term(3), leaderCommit: LogPosition(32))
        }
        #expect(header == Array(bytes[0..<56]))
    }

    @Test func appendEntriesProbeHasNoBytes() throws {
        let bytes = encoded {
            AppendEntriesFrame.encode(
                into: $0, term: Term(4), prevPosition: LogPosition(128), prevTerm: Term(2), endPosition: LogPosition(128),
                entryTerm: Term(4), leaderCommit: LogPosition(0), logBytes: UnsafeRawBufferPointer(start: nil, count: 0))
        }
        #expect(bytes.count == AppendEntriesFrame.fixedBytes)
        try withBytes(bytes) { raw in
            let frame = try AppendEntriesFrame(validating: raw)
            #expect(frame.logBytes.isEmpty && frame.endPosition == frame.prevPosition)
        }
    }

    @Test func appendResponse() throws {
        let bytes = encoded {
            AppendResponseFrame.encode(
                into: $0, term: Term(3), success: false, catchingUp: true, appendedPosition: LogPosition(100),
                persistedPosition: LogPosition(80), hintPosition: LogPosition(60), hintTerm: Term(2), hintTermStart: LogPosition(40),
                bootID: 0x0102_0304_0506_0708)
        }
        #expect(bytes == hex("""
            40000000 02 31 0200  0300000000000000  6400000000000000  5000000000000000
            3c00000000000000  0200000000000000  2800000000000000  0807060504030201
            """))
        try withBytes(bytes) { raw in
            let frame = try AppendResponseFrame(validating: raw)
            #expect(!frame.success && frame.catchingUp && frame.term == Term(3))
            #expect(frame.appendedPosition == LogPosition(100) && frame.persistedPosition == LogPosition(80))
            #expect(frame.hintPosition == LogPosition(60) && frame.hintTerm == Term(2) && frame.hintTermStart == LogPosition(40))
            #expect(frame.bootID == 0x0102_0304_0506_0708)
        }
    }

    @Test func caughtUp() throws {
        let bytes = encoded {
            CaughtUpFrame.encode(into: $0, term: Term(7), position: LogPosition(0x0201), bootID: 0x1122_3344_5566_7788)
        }
        #expect(bytes == hex("20000000 02 38 0000  0700000000000000  0102000000000000  8877665544332211"))
        try withBytes(bytes) { raw in
            let frame = try CaughtUpFrame(validating: raw)
            #expect(frame.term == Term(7) && frame.position == LogPosition(0x0201) && frame.bootID == 0x1122_3344_5566_7788)
            guard case .caughtUp(let viaDispatch) = try WireMessage(validating: raw) else {
                Issue.record("WireMessage did not dispatch 0x38 to caughtUp")
                return
            }
            #expect(viaDispatch.position == LogPosition(0x0201))
        }
        var negative = bytes
        negative[23] = 0x80  // position's sign bit
        #expect(throws: WireRejection.self) { try withBytes(negative) { raw in _ = try CaughtUpFrame(validating: raw) } }
        var flagged = bytes
        flagged[6] = 1
        #expect(throws: WireRejection.self) { try withBytes(flagged) { raw in _ = try CaughtUpFrame(validating: raw) } }
    }

    @Test func heartbeats() throws {
        let heartbeat = encoded { HeartbeatFrame.encode(into: $0, term: Term(5), leaderCommit: LogPosition(0x0102)) }
        #expect(heartbeat == hex("18000000 02 32 0000  0500000000000000  0201000000000000"))
        let response = encoded { HeartbeatResponseFrame.encode(into: $0, term: Term(5), appendedPosition: LogPosition(0x0102)) }
        #expect(response == hex("18000000 02 33 0000  0500000000000000  0201000000000000"))
        try withBytes(heartbeat) { raw in
            let frame = try HeartbeatFrame(validating: raw)
            #expect(frame.term == Term(5) && frame.leaderCommit == LogPosition(0x0102))
        }
        try withBytes(response) { raw in
            let frame = try HeartbeatResponseFrame(validating: raw)
            #expect(frame.term == Term(5) && frame.appendedPosition == LogPosition(0x0102))
        }
    }

    @Test func votesAndTimeoutNow() throws {
        let request = encoded {
            VoteRequestFrame.encode(into: $0, term: Term(6), preVote: true, transfer: true, lastPosition: LogPosition(0x80), lastTerm: Term(5))
        }
        #expect(request == hex("20000000 02 34 0300  0600000000000000  8000000000000000  0500000000000000"))
        let response = encoded { VoteResponseFrame.encode(into: $0, term: Term(6), preVote: false, granted: true) }
        #expect(response == hex("10000000 02 35 0200  0600000000000000"))
        let timeoutNow = encoded { TimeoutNowFrame.encode(into: $0, term: Term(6)) }
        #expect(timeoutNow == hex("10000000 02 36 0000  0600000000000000"))
        try withBytes(request) { raw in
            let frame = try VoteRequestFrame(validating: raw)
            #expect(frame.preVote && frame.transfer && frame.lastPosition == LogPosition(0x80) && frame.lastTerm == Term(5))
        }
        try withBytes(response) { raw in
            let frame = try VoteResponseFrame(validating: raw)
            #expect(!frame.preVote && frame.granted && frame.term == Term(6))
        }
        try withBytes(timeoutNow) { raw in
            let frame = try TimeoutNowFrame(validating: raw)
            #expect(frame.term == Term(6))
        }
    }

    @Test func snapshotChunkCarriesItsCRC() throws {
        let chunk = Array("123456789".utf8)
        let bytes = chunk.withUnsafeBytes { chunkBytes in
            encoded {
                SnapshotChunkFrame.encode(
                    into: $0, term: Term(4), snapshotID: 1, snapshotPosition: LogPosition(0x100), snapshotTerm: Term(3),
                    totalBytes: 9, offset: 0, chunk: chunkBytes)
            }
        }
        // 0xE3069283 is the CRC32C check value of "123456789".
        #expect(bytes == hex("""
            49000000 02 37 0000  0400000000000000  0100000000000000  0001000000000000
            0300000000000000  0900000000000000  0000000000000000  839206e3 09000000
            313233343536373839
            """))
        try withBytes(bytes) { raw in
            let frame = try SnapshotChunkFrame(validating: raw)
            #expect(frame.snapshotID == 1 && frame.snapshotPosition == LogPosition(0x100) && frame.snapshotTerm == Term(3))
            #expect(frame.totalBytes == 9 && frame.offset == 0 && frame.isLast && frame.chunkCRC == 0xE306_9283)
            #expect(Array(frame.chunk) == chunk)
        }
    }
}
