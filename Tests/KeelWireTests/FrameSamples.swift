import KeelCore
import KeelWire

/// Random valid frames of every type, for the stream and fuzz tests.
enum FrameSamples {
    /// A random, valid frame of `type`; variable parts are at most `maxVariableBytes` long.
    static func random(_ type: MessageType, using rng: inout SeededRandom, maxVariableBytes: Int = 64) -> [UInt8] {
        func int(_ range: ClosedRange<Int64>) -> Int64 { rng.integer(in: range) }
        func bool() -> Bool { rng.next() & 1 == 1 }
        func blob(_ maximum: Int, printable: Bool = false) -> [UInt8] {
            let count = Int(rng.integer(in: 0...Int64(maximum)))
            return (0..<count).map { _ in printable ? UInt8(0x21 + rng.next() % 94) : UInt8(truncatingIfNeeded: rng.next()) }
        }
        let any = Int64.min...Int64.max, natural = Int64(0)...Int64(1) << 40, positive = Int64(1)...Int64(1) << 40
        switch type {
        case .connect:
            return blob(min(maxVariableBytes, WireProtocol.maxCredentialsBytes)).withUnsafeBytes { credentials in
                encoded(capacity: 24 + credentials.count) { ConnectFrame.encode(into: $0, correlationID: int(any), credentials: credentials) }
            }
        case .connectAccepted:
            return encoded {
                ConnectAcceptedFrame.encode(
                    into: $0, correlationID: int(any), leaderTerm: Term(int(natural)), leaderMemberID: MemberID(Int32(int(0...6))))
            }
        case .redirect:
            var host = blob(min(maxVariableBytes, 255), printable: true)
            if host.isEmpty { host = [0x68] }
            return host.withUnsafeBytes { hostBytes in
                encoded {
                    RedirectFrame.encode(
                        into: $0, correlationID: int(any), leaderTerm: Term(int(natural)), leaderMemberID: MemberID(Int32(int(0...6))),
                        host: hostBytes, port: UInt16(int(1...65535)))
                }
            }
        case .connectRejected:
            return blob(min(maxVariableBytes, 1024), printable: true).withUnsafeBytes { detail in
                encoded {
                    ConnectRejectedFrame.encode(
                        into: $0, correlationID: int(any), reason: ConnectRejection.allCases.randomElement(using: &rng)!, detail: detail)
                }
            }
        case .sessionOpened:
            return encoded {
                SessionOpenedFrame.encode(
                    into: $0, correlationID: int(any), sessionID: int(positive), timestamp: ClusterTime(nanosSinceEpoch: int(natural)),
                    secret: rng.next())
            }
        case .sessionClosed:
            return encoded {
                SessionClosedFrame.encode(
                    into: $0, sessionID: int(positive), timestamp: ClusterTime(nanosSinceEpoch: int(natural)),
                    reason: SessionCloseReason.allCases.randomElement(using: &rng)!)
            }
        case .reattach:
            return blob(min(maxVariableBytes, WireProtocol.maxCredentialsBytes)).withUnsafeBytes { credentials in
                encoded(capacity: 40 + credentials.count) {
                    ReattachFrame.encode(into: $0, correlationID: int(any), sessionID: int(positive), secret: rng.next(), credentials: credentials)
                }
            }
        case .requestRejected:
            return blob(min(maxVariableBytes, 1024), printable: true).withUnsafeBytes { detail in
                encoded(capacity: 40 + detail.count) {
                    RequestRejectedFrame.encode(
                        into: $0, sessionID: int(positive), sequence: int(positive), expectedSequence: int(positive),
                        reason: RequestRejection.allCases.randomElement(using: &rng)!, detail: detail)
                }
            }
        case .challenge, .challengeResponse:
            return blob(min(maxVariableBytes, WireProtocol.maxCredentialsBytes)).withUnsafeBytes { data in
                encoded(capacity: 24 + data.count) {
                    AuthenticationExchangeFrame.encode(into: $0, type: type, correlationID: int(any), data: data)
                }
            }
        case .request:
            return blob(maxVariableBytes).withUnsafeBytes { payload in
                encoded(capacity: 24 + payload.count) {
                    RequestFrame.encode(into: $0, sessionID: int(positive), sequence: int(positive), payload: payload)
                }
            }
        case .response:
            return blob(maxVariableBytes).withUnsafeBytes { payload in
                encoded(capacity: 32 + payload.count) {
                    ResponseFrame.encode(
                        into: $0, sessionID: int(positive), sequence: int(natural), timestamp: ClusterTime(nanosSinceEpoch: int(natural)),
                        payload: payload, resent: bool())
                }
            }
        case .keepAlive, .close:
            return encoded { SessionSignalFrame.encode(into: $0, type: type, sessionID: int(positive)) }
        case .adminRequest:
            return blob(min(maxVariableBytes, 1024)).withUnsafeBytes { body in
                encoded {
                    AdminRequestFrame.encode(
                        into: $0, correlationID: int(any), requestType: AdminRequestType.allCases.randomElement(using: &rng)!, body: body)
                }
            }
        case .adminResponse:
            return blob(min(maxVariableBytes, 1024)).withUnsafeBytes { body in
                encoded {
                    AdminResponseFrame.encode(
                        into: $0, correlationID: int(any), requestType: AdminRequestType.allCases.randomElement(using: &rng)!,
                        status: AdminStatus.allCases.randomElement(using: &rng)!, body: body)
                }
            }
        case .handshake:
            return encoded {
                HandshakeFrame.encode(
                    into: $0, clusterID: rng.next(), configurationDigest: rng.next(), memberID: MemberID(Int32(int(0...6))))
            }
        case .handshakeRefused:
            return blob(min(maxVariableBytes, 1024), printable: true).withUnsafeBytes { detail in
                encoded {
                    HandshakeRefusedFrame.encode(
                        into: $0, mismatch: HandshakeMismatch.allCases.randomElement(using: &rng)!, expected: rng.next(),
                        actual: rng.next(), detail: detail)
                }
            }
        case .memberAuthentication:
            return (0..<MemberAuthenticationFrame.valueBytes).map { _ in UInt8(truncatingIfNeeded: rng.next()) }.withUnsafeBytes { value in
                encoded { MemberAuthenticationFrame.encode(into: $0, step: MemberAuthenticationStep.allCases.randomElement(using: &rng)!, value: value) }
            }
        case .appendEntries:
            let term = int(1...1000), entryTerm = int(1...term), prevTerm = int(0...entryTerm)
            let prev = int(natural)
            return blob(maxVariableBytes).withUnsafeBytes { log in
                encoded(capacity: 56 + log.count) {
                    AppendEntriesFrame.encode(
                        into: $0, term: Term(term), prevPosition: LogPosition(prev), prevTerm: Term(prevTerm),
                        endPosition: LogPosition(prev + Int64(log.count)), entryTerm: Term(entryTerm),
                        leaderCommit: LogPosition(int(natural)), logBytes: log)
                }
            }
        case .appendResponse:
            let appended = int(natural), hint = int(natural)
            return encoded {
                AppendResponseFrame.encode(
                    into: $0, term: Term(int(natural)), success: bool(), catchingUp: bool(), appendedPosition: LogPosition(appended),
                    persistedPosition: LogPosition(int(0...appended)), hintPosition: LogPosition(hint), hintTerm: Term(int(natural)),
                    hintTermStart: LogPosition(int(0...hint)), bootID: rng.next())
            }
        case .heartbeat:
            return encoded { HeartbeatFrame.encode(into: $0, term: Term(int(natural)), leaderCommit: LogPosition(int(natural))) }
        case .heartbeatResponse:
            return encoded {
                HeartbeatResponseFrame.encode(into: $0, term: Term(int(natural)), appendedPosition: LogPosition(int(natural)))
            }
        case .voteRequest:
            let term = int(natural)
            return encoded {
                VoteRequestFrame.encode(
                    into: $0, term: Term(term), preVote: bool(), transfer: bool(), lastPosition: LogPosition(int(natural)),
                    lastTerm: Term(int(0...term)))
            }
        case .voteResponse:
            return encoded { VoteResponseFrame.encode(into: $0, term: Term(int(natural)), preVote: bool(), granted: bool()) }
        case .timeoutNow:
            return encoded { TimeoutNowFrame.encode(into: $0, term: Term(int(natural))) }
        case .caughtUp:
            return encoded {
                CaughtUpFrame.encode(into: $0, term: Term(int(natural)), position: LogPosition(int(natural)), bootID: rng.next())
            }
        case .snapshotOffer:
            let term = int(0...1000)
            return encoded {
                SnapshotOfferFrame.encode(
                    into: $0, term: Term(term), snapshotID: int(natural), snapshotPosition: LogPosition(int(natural)),
                    snapshotTerm: Term(int(0...term)), totalBytes: int(160...1 << 40), wholeCRC: UInt32(truncatingIfNeeded: rng.next()))
            }
        case .snapshotAck:
            return encoded {
                SnapshotAckFrame.encode(
                    into: $0, term: Term(int(natural)), snapshotID: int(natural), nextOffset: int(natural),
                    status: SnapshotAckStatus(rawValue: UInt8(int(0...2)))!)
            }
        case .snapshotAbort:
            return encoded {
                SnapshotAbortFrame.encode(
                    into: $0, term: Term(int(natural)), snapshotID: int(natural), reason: SnapshotAbortReason(rawValue: UInt16(int(1...5)))!)
            }
        case .snapshotChunk:
            let term = int(0...1000), chunk = blob(maxVariableBytes)
            let offset = int(0...1 << 30), total = offset + Int64(chunk.count) + int(0...1)
            return chunk.withUnsafeBytes { chunkBytes in
                encoded(capacity: 64 + chunkBytes.count) {
                    SnapshotChunkFrame.encode(
                        into: $0, term: Term(term), snapshotID: int(natural), snapshotPosition: LogPosition(int(natural)),
                        snapshotTerm: Term(int(0...term)), totalBytes: total, offset: offset, chunk: chunkBytes)
                }
            }
        }
    }
}
