import KeelCore
import KeelWire

/// Bytes from a hex string; spaces and newlines are ignored ("1a00 0000" → [0x1a, 0, 0, 0]).
func hex(_ text: String) -> [UInt8] {
    let digits = text.filter { !$0.isWhitespace }.map { UInt8(String($0), radix: 16)! }
    precondition(digits.count % 2 == 0, "odd number of hex digits")
    return stride(from: 0, to: digits.count, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

/// Runs an encoder into a buffer poisoned with 0xEE (so an unwritten byte shows in golden bytes)
/// and returns exactly the bytes it says it wrote.
func encoded(capacity: Int = 4096, _ encode: (UnsafeMutableRawBufferPointer) -> Int) -> [UInt8] {
    var bytes = [UInt8](repeating: 0xEE, count: capacity)
    let length = bytes.withUnsafeMutableBytes { encode($0) }
    precondition(length <= capacity, "encoder claims more bytes than the buffer")
    return Array(bytes[0..<length])
}

/// Runs `body` with the raw bytes of a literal array.
func withBytes<R>(_ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
    try bytes.withUnsafeBytes { try body($0) }
}

/// Decodes with `WireMessage` and returns the rejection, or nil if the frame was accepted.
func rejection(of bytes: [UInt8]) -> WireRejection? {
    bytes.withUnsafeBytes { raw in
        do throws(WireRejection) {
            _ = try WireMessage(validating: raw)
            return nil
        } catch {
            return error
        }
    }
}

/// Re-encodes a decoded message from its fields alone. Decoders accept only canonical frames
/// (reserved bytes zero, lengths exact), so for every accepted frame this must give back the
/// original bytes exactly — a property the fuzz test checks on every frame it sees accepted.
func reencode(_ message: WireMessage) -> [UInt8] {
    switch message {
    case .connect(let f):
        encoded(capacity: f.bytes.count) {
            ConnectFrame.encode(into: $0, correlationID: f.correlationID, credentials: f.credentials)
        }
    case .connectAccepted(let f):
        encoded { ConnectAcceptedFrame.encode(into: $0, correlationID: f.correlationID, leaderTerm: f.leaderTerm, leaderMemberID: f.leaderMemberID) }
    case .redirect(let f):
        encoded {
            RedirectFrame.encode(
                into: $0, correlationID: f.correlationID, leaderTerm: f.leaderTerm, leaderMemberID: f.leaderMemberID,
                host: f.hostBytes, port: f.port)
        }
    case .connectRejected(let f):
        encoded { ConnectRejectedFrame.encode(into: $0, correlationID: f.correlationID, reason: f.reason, detail: f.detailBytes) }
    case .sessionOpened(let f):
        encoded {
            SessionOpenedFrame.encode(into: $0, correlationID: f.correlationID, sessionID: f.sessionID, timestamp: f.timestamp, secret: f.secret)
        }
    case .sessionClosed(let f):
        encoded { SessionClosedFrame.encode(into: $0, sessionID: f.sessionID, timestamp: f.timestamp, reason: f.reason) }
    case .request(let f):
        encoded(capacity: f.bytes.count) { RequestFrame.encode(into: $0, sessionID: f.sessionID, sequence: f.sequence, payload: f.payload) }
    case .response(let f):
        encoded(capacity: f.bytes.count) {
            ResponseFrame.encode(
                into: $0, sessionID: f.sessionID, sequence: f.sequence, timestamp: f.timestamp, payload: f.payload, resent: f.isResent)
        }
    case .keepAlive(let f), .close(let f):
        encoded { SessionSignalFrame.encode(into: $0, type: f.type, sessionID: f.sessionID) }
    case .reattach(let f):
        encoded(capacity: f.bytes.count) {
            ReattachFrame.encode(into: $0, correlationID: f.correlationID, sessionID: f.sessionID, secret: f.secret, credentials: f.credentials)
        }
    case .requestRejected(let f):
        encoded(capacity: f.bytes.count) {
            RequestRejectedFrame.encode(
                into: $0, sessionID: f.sessionID, sequence: f.sequence, expectedSequence: f.expectedSequence, reason: f.reason,
                detail: f.detailBytes)
        }
    case .challenge(let f), .challengeResponse(let f):
        encoded(capacity: f.bytes.count) { AuthenticationExchangeFrame.encode(into: $0, type: f.type, correlationID: f.correlationID, data: f.data) }
    case .adminRequest(let f):
        encoded { AdminRequestFrame.encode(into: $0, correlationID: f.correlationID, requestType: f.requestType, body: f.body) }
    case .adminResponse(let f):
        encoded {
            AdminResponseFrame.encode(into: $0, correlationID: f.correlationID, requestType: f.requestType, status: f.status, body: f.body)
        }
    case .handshake(let f):
        encoded {
            HandshakeFrame.encode(
                into: $0, clusterID: f.clusterID, configurationDigest: f.configurationDigest, memberID: f.memberID,
                protocolVersion: f.protocolVersion)
        }
    case .handshakeRefused(let f):
        encoded {
            HandshakeRefusedFrame.encode(into: $0, mismatch: f.mismatch, expected: f.expected, actual: f.actual, detail: f.detailBytes)
        }
    case .memberAuthentication(let f):
        encoded { MemberAuthenticationFrame.encode(into: $0, step: f.step, value: f.value) }
    case .appendEntries(let f):
        encoded(capacity: f.bytes.count) {
            AppendEntriesFrame.encode(
                into: $0, term: f.term, prevPosition: f.prevPosition, prevTerm: f.prevTerm, endPosition: f.endPosition,
                entryTerm: f.entryTerm, leaderCommit: f.leaderCommit, logBytes: f.logBytes)
        }
    case .appendResponse(let f):
        encoded {
            AppendResponseFrame.encode(
                into: $0, term: f.term, success: f.success, catchingUp: f.catchingUp, appendedPosition: f.appendedPosition,
                persistedPosition: f.persistedPosition, hintPosition: f.hintPosition, hintTerm: f.hintTerm,
                hintTermStart: f.hintTermStart, bootID: f.bootID)
        }
    case .heartbeat(let f):
        encoded { HeartbeatFrame.encode(into: $0, term: f.term, leaderCommit: f.leaderCommit) }
    case .heartbeatResponse(let f):
        encoded { HeartbeatResponseFrame.encode(into: $0, term: f.term, appendedPosition: f.appendedPosition) }
    case .voteRequest(let f):
        encoded {
            VoteRequestFrame.encode(
                into: $0, term: f.term, preVote: f.preVote, transfer: f.transfer, lastPosition: f.lastPosition, lastTerm: f.lastTerm)
        }
    case .voteResponse(let f):
        encoded { VoteResponseFrame.encode(into: $0, term: f.term, preVote: f.preVote, granted: f.granted) }
    case .timeoutNow(let f):
        encoded { TimeoutNowFrame.encode(into: $0, term: f.term) }
    case .caughtUp(let f):
        encoded { CaughtUpFrame.encode(into: $0, term: f.term, position: f.position, bootID: f.bootID) }
    case .snapshotOffer(let f):
        encoded {
            SnapshotOfferFrame.encode(
                into: $0, term: f.term, snapshotID: f.snapshotID, snapshotPosition: f.snapshotPosition, snapshotTerm: f.snapshotTerm,
                totalBytes: f.totalBytes, wholeCRC: f.wholeCRC)
        }
    case .snapshotAck(let f):
        encoded { SnapshotAckFrame.encode(into: $0, term: f.term, snapshotID: f.snapshotID, nextOffset: f.nextOffset, status: f.status) }
    case .snapshotAbort(let f):
        encoded { SnapshotAbortFrame.encode(into: $0, term: f.term, snapshotID: f.snapshotID, reason: f.reason) }
    case .snapshotChunk(let f):
        encoded(capacity: f.bytes.count) {
            SnapshotChunkFrame.encode(
                into: $0, term: f.term, snapshotID: f.snapshotID, snapshotPosition: f.snapshotPosition,
                snapshotTerm: f.snapshotTerm, totalBytes: f.totalBytes, offset: f.offset, chunk: f.chunk)
        }
    }
}
