import KeelCore
import KeelWire
import Testing

/// Golden bytes (written out by hand from the layouts in docs/wire-protocol.md) and round trips for
/// the client and admin frames.
@Suite struct ClientFrameGoldenTests {
    @Test func connect() throws {
        let credentials: [UInt8] = [0x61, 0x62]
        let bytes = credentials.withUnsafeBytes { creds in
            encoded { ConnectFrame.encode(into: $0, correlationID: 0x1122_3344_5566_7788, credentials: creds) }
        }
        #expect(bytes == hex("1a000000 02 01 0000  8877665544332211  02000000 00000000  6162"))
        try withBytes(bytes) { raw in
            guard case .connect(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.correlationID == 0x1122_3344_5566_7788)
            #expect(Array(frame.credentials) == credentials)
        }
    }

    @Test func connectAccepted() throws {
        let bytes = encoded { ConnectAcceptedFrame.encode(into: $0, correlationID: 7, leaderTerm: Term(3), leaderMemberID: MemberID(2)) }
        #expect(bytes == hex("20000000 02 02 0000  0700000000000000  0300000000000000  02000000 00000000"))
        try withBytes(bytes) { raw in
            let frame = try ConnectAcceptedFrame(validating: raw)
            #expect(frame.correlationID == 7 && frame.leaderTerm == Term(3) && frame.leaderMemberID == MemberID(2))
        }
    }

    @Test func redirect() throws {
        let host = Array("h1".utf8)
        let bytes = host.withUnsafeBytes { hostBytes in
            encoded {
                RedirectFrame.encode(
                    into: $0, correlationID: 7, leaderTerm: Term(3), leaderMemberID: MemberID(1), host: hostBytes, port: 9000)
            }
        }
        #expect(bytes == hex("22000000 02 03 0000  0700000000000000  0300000000000000  01000000 2823 0200  6831"))
        try withBytes(bytes) { raw in
            let frame = try RedirectFrame(validating: raw)
            #expect(frame.host == "h1" && frame.port == 9000 && frame.leaderMemberID == MemberID(1) && frame.leaderTerm == Term(3))
        }
    }

    @Test func connectRejected() throws {
        let bytes = Array("x".utf8).withUnsafeBytes { detail in
            encoded { ConnectRejectedFrame.encode(into: $0, correlationID: 7, reason: .noLeader, detail: detail) }
        }
        #expect(bytes == hex("19000000 02 04 0000  0700000000000000  0300 0100 00000000  78"))
        try withBytes(bytes) { raw in
            let frame = try ConnectRejectedFrame(validating: raw)
            #expect(frame.reason == .noLeader && frame.detail == "x" && frame.correlationID == 7)
        }
    }

    @Test func sessionOpenedAndClosed() throws {
        let opened = encoded {
            SessionOpenedFrame.encode(into: $0, correlationID: 7, sessionID: 9, timestamp: ClusterTime(nanosSinceEpoch: 16), secret: 0xA1)
        }
        #expect(opened == hex("28000000 02 05 0000  0700000000000000  0900000000000000  1000000000000000  a100000000000000"))
        let closed = encoded {
            SessionClosedFrame.encode(into: $0, sessionID: 9, timestamp: ClusterTime(nanosSinceEpoch: 16), reason: .timedOut)
        }
        #expect(closed == hex("20000000 02 06 0000  0900000000000000  1000000000000000  0200 0000 00000000"))
        try withBytes(opened) { raw in
            let frame = try SessionOpenedFrame(validating: raw)
            #expect(frame.sessionID == 9 && frame.correlationID == 7 && frame.timestamp.nanosSinceEpoch == 16 && frame.secret == 0xA1)
        }
        try withBytes(closed) { raw in
            let frame = try SessionClosedFrame(validating: raw)
            #expect(frame.sessionID == 9 && frame.reason == .timedOut && frame.timestamp.nanosSinceEpoch == 16)
        }
    }

    @Test func reattach() throws {
        let bytes = [UInt8]([0x63]).withUnsafeBytes { credentials in
            encoded(capacity: 41) { ReattachFrame.encode(into: $0, correlationID: 7, sessionID: 9, secret: 0x0102, credentials: credentials) }
        }
        #expect(bytes == hex("29000000 02 0b 0000  0700000000000000  0900000000000000  0201000000000000  01000000 00000000  63"))
        try withBytes(bytes) { raw in
            guard case .reattach(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.correlationID == 7 && frame.sessionID == 9 && frame.secret == 0x0102 && Array(frame.credentials) == [0x63])
        }
    }

    @Test func requestRejected() throws {
        let bytes = Array("x".utf8).withUnsafeBytes { detail in
            encoded {
                RequestRejectedFrame.encode(
                    into: $0, sessionID: 9, sequence: 3, expectedSequence: 5, reason: .responseNoLongerAvailable, detail: detail)
            }
        }
        #expect(bytes == hex("29000000 02 0c 0000  0900000000000000  0300000000000000  0500000000000000  0100 0100 00000000  78"))
        try withBytes(bytes) { raw in
            guard case .requestRejected(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.sessionID == 9 && frame.sequence == 3 && frame.expectedSequence == 5)
            #expect(frame.reason == .responseNoLongerAvailable && frame.detail == "x")
        }
        var badReason = bytes
        badReason[32] = 9
        #expect(rejection(of: badReason) == .fieldOutOfRange(field: "reason", value: 9))
    }

    @Test func challengeAndResponse() throws {
        for type in [MessageType.challenge, .challengeResponse] {
            let bytes = [UInt8]([0xAB, 0xCD]).withUnsafeBytes { data in
                encoded { AuthenticationExchangeFrame.encode(into: $0, type: type, correlationID: 7, data: data) }
            }
            #expect(bytes == hex("1a000000 02 \(type == .challenge ? "0d" : "0e") 0000  0700000000000000  02000000 00000000  abcd"))
            try withBytes(bytes) { raw in
                let frame = try AuthenticationExchangeFrame(validating: raw, type: type)
                #expect(frame.type == type && frame.correlationID == 7 && Array(frame.data) == [0xAB, 0xCD])
            }
        }
    }

    @Test func requestAndResponse() throws {
        let request = Array("hi".utf8).withUnsafeBytes { payload in
            encoded { RequestFrame.encode(into: $0, sessionID: 9, sequence: 4, payload: payload) }
        }
        #expect(request == hex("1a000000 02 07 0000  0900000000000000  0400000000000000  6869"))
        let response = Array("ok".utf8).withUnsafeBytes { payload in
            encoded {
                ResponseFrame.encode(into: $0, sessionID: 9, sequence: 4, timestamp: ClusterTime(nanosSinceEpoch: 16), payload: payload)
            }
        }
        #expect(response == hex("22000000 02 08 0000  0900000000000000  0400000000000000  1000000000000000  6f6b"))
        try withBytes(request) { raw in
            guard case .request(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.sessionID == 9 && frame.sequence == 4 && Array(frame.payload) == Array("hi".utf8))
        }
        try withBytes(response) { raw in
            guard case .response(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.sessionID == 9 && frame.sequence == 4 && Array(frame.payload) == Array("ok".utf8))
            #expect(frame.timestamp.nanosSinceEpoch == 16)
        }
    }

    @Test func keepAliveAndClose() throws {
        let keepAlive = encoded { SessionSignalFrame.encode(into: $0, type: .keepAlive, sessionID: 9) }
        let close = encoded { SessionSignalFrame.encode(into: $0, type: .close, sessionID: 9) }
        #expect(keepAlive == hex("10000000 02 09 0000  0900000000000000"))
        #expect(close == hex("10000000 02 0a 0000  0900000000000000"))
        try withBytes(keepAlive) { raw in
            guard case .keepAlive(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.sessionID == 9 && frame.type == .keepAlive)
        }
        try withBytes(close) { raw in
            guard case .close(let frame) = try WireMessage(validating: raw) else { Issue.record("wrong case"); return }
            #expect(frame.sessionID == 9 && frame.type == .close)
        }
    }

    @Test func adminRequestAndResponse() throws {
        let request = [UInt8]([2, 0, 0, 0]).withUnsafeBytes { body in
            encoded { AdminRequestFrame.encode(into: $0, correlationID: 0x0102, requestType: .transferLeadership, body: body) }
        }
        #expect(request == hex("1c000000 02 10 0000  0201000000000000  0300 0400 00000000  02000000"))
        let response = Array("L".utf8).withUnsafeBytes { body in
            encoded {
                AdminResponseFrame.encode(into: $0, correlationID: 0x0102, requestType: .describe, status: .notLeader, body: body)
            }
        }
        #expect(response == hex("19000000 02 11 0000  0201000000000000  0100 0200 0100 0000  4c"))
        try withBytes(request) { raw in
            let frame = try AdminRequestFrame(validating: raw)
            #expect(frame.requestType == .transferLeadership && frame.correlationID == 0x0102 && Array(frame.body) == [2, 0, 0, 0])
        }
        try withBytes(response) { raw in
            let frame = try AdminResponseFrame(validating: raw)
            #expect(frame.requestType == .describe && frame.status == .notLeader && Array(frame.body) == [0x4c])
        }
    }
}
