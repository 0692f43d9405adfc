import KeelCore
import KeelRaft
import KeelWire

/// Maps KeelRaft's `RaftMessage` values onto KeelWire's frames and back, field by field
/// (docs/wire-protocol.md "Raft messages"). AppendEntries' log bytes are not handled here: the
/// agent attaches them from the mapped log.
enum RaftWireCodec {
    /// The largest fixed-size Raft frame (everything but AppendEntries' log bytes).
    static let maxFixedFrameBytes = 64

    /// Outbound encoder for every body except `appendEntries` (whose header the agent encodes with
    /// `AppendEntriesFrame.encodeHeader`).
    static func encode(_ message: RaftMessage, into buffer: UnsafeMutableRawBufferPointer) -> Int {
        switch message.body {
        case .appendEntries:
            preconditionFailure("append entries are encoded with their log bytes by the agent")
        case .appendResponse(let r):
            // The wire carries the hint's position; the leader clamps it (a hint never exceeds appended).
            return AppendResponseFrame.encode(
                into: buffer, term: message.term, success: r.success, catchingUp: r.catchingUp,
                appendedPosition: max(r.appendedPosition, r.persistedPosition), persistedPosition: r.persistedPosition,
                hintPosition: r.hintPosition, hintTerm: r.hintTerm, hintTermStart: min(r.hintTermStart, r.hintPosition),
                bootID: r.bootID)
        case .heartbeat(let commit):
            return HeartbeatFrame.encode(into: buffer, term: message.term, leaderCommit: commit)
        case .heartbeatResponse(let appended):
            return HeartbeatResponseFrame.encode(into: buffer, term: message.term, appendedPosition: appended)
        case .voteRequest(let v):
            return VoteRequestFrame.encode(
                into: buffer, term: message.term, preVote: v.preVote, transfer: v.transfer, lastPosition: v.lastPosition, lastTerm: v.lastTerm)
        case .voteResponse(let preVote, let granted):
            return VoteResponseFrame.encode(into: buffer, term: message.term, preVote: preVote, granted: granted)
        case .timeoutNow:
            return TimeoutNowFrame.encode(into: buffer, term: message.term)
        case .caughtUp(let position, let bootID):
            return CaughtUpFrame.encode(into: buffer, term: message.term, position: position, bootID: bootID)
        }
    }

    /// Inbound decoder: the Raft message a validated wire message carries, or nil for other types.
    /// The wire has no field for a rejection's `rejectedPosition`: it is decoded as "current"
    /// (`Int64.max`), so the leader never mistakes a rejection for a stale one.
    static func decode(_ message: WireMessage) -> RaftMessage? {
        switch message {
        case .appendEntries(let f):
            let body = AppendEntries(
                prevPosition: f.prevPosition, prevTerm: f.prevTerm, endPosition: f.endPosition, entryTerm: f.entryTerm,
                leaderCommit: f.leaderCommit)
            return RaftMessage(term: f.term, body: .appendEntries(body))
        case .appendResponse(let f):
            let body = AppendResponse(
                success: f.success, appendedPosition: f.appendedPosition, persistedPosition: f.persistedPosition,
                catchingUp: f.catchingUp, bootID: f.bootID, rejectedPosition: LogPosition(Int64.max),
                hintPosition: f.hintPosition, hintTerm: f.hintTerm, hintTermStart: f.hintTermStart)
            return RaftMessage(term: f.term, body: .appendResponse(body))
        case .heartbeat(let f):
            return RaftMessage(term: f.term, body: .heartbeat(leaderCommit: f.leaderCommit))
        case .heartbeatResponse(let f):
            return RaftMessage(term: f.term, body: .heartbeatResponse(appendedPosition: f.appendedPosition))
        case .voteRequest(let f):
            let body = VoteRequest(preVote: f.preVote, transfer: f.transfer, lastPosition: f.lastPosition, lastTerm: f.lastTerm)
            return RaftMessage(term: f.term, body: .voteRequest(body))
        case .voteResponse(let f):
            return RaftMessage(term: f.term, body: .voteResponse(preVote: f.preVote, granted: f.granted))
        case .timeoutNow(let f):
            return RaftMessage(term: f.term, body: .timeoutNow)
        case .caughtUp(let f):
            return RaftMessage(term: f.term, body: .caughtUp(position: f.position, bootID: f.bootID))
        default:
            return nil
        }
    }
}

/// Names of the wire rejection reasons, indexed by code, for `NodeCounters(writer:rejectionReasons:)`:
/// the consensus agent counts a rejected frame under `rejectedFrames(reasonCode:)` of its reason.
public let wireRejectionReasonNames: [String] = WireRejectionReason.allCases.map(\.description)
