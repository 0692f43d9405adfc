import KeelCore
import KeelLog
import KeelService

/// The service agent (DESIGN.md decision 8): reads committed entries straight from the mapped log,
/// in order, up to the commit position the consensus agent publishes (acquire), and calls the
/// service. Its egress goes back over the SPSC `EgressQueue`; on a follower it is suppressed at the
/// source (replicas run the same code; only the leader's replica answers clients).
public final class ServiceAgent<Service: ClusteredService>: Agent, SessionEgress {
    public let roleName = "service"
    /// The service (read it only from this agent's thread, or after the agent stopped).
    public private(set) var service: Service
    /// The service's handle on the node.
    public let cluster: Cluster
    let reader: LogReader
    let shared: SharedNodeState
    let egress: EgressQueue
    var sessions: [Int64: ClientSession] = [:]
    /// Every entry below this position has been applied.
    public private(set) var appliedPosition: LogPosition
    var lastRole: ClusterRole?
    var applying = false

    /// A service agent reading `reader` from `startPosition` (the log start, without snapshots).
    public init(service: Service, memberID: MemberID, reader: LogReader, shared: SharedNodeState, egress: EgressQueue, startPosition: LogPosition = .zero) {
        self.service = service
        self.cluster = Cluster(memberId: memberID)
        self.reader = reader
        self.shared = shared
        self.egress = egress
        self.appliedPosition = startPosition
    }

    public func onStart() throws {
        try service.onStart(cluster: cluster)
    }

    public func doWork(nowNanos: Int64) throws -> Int {
        var work = 0
        let role = shared.currentRole
        if role != lastRole {
            lastRole = role
            cluster.role = role
            service.onRoleChange(role)
            work += 1
        }
        let commit = LogPosition(shared.commitPosition.load(ordering: .acquiring))
        guard commit > appliedPosition else { return work }
        var applied: Int64 = 0
        appliedPosition = reader.forEachFrame(from: appliedPosition, limit: commit) { frame in
            apply(frame)
            applied += 1
            return true
        }
        shared.appliedPosition.store(appliedPosition.rawValue, ordering: .releasing)
        if !egress.isEmpty { shared.wakeConsensus() }
        return work + Int(applied)
    }

    public func onClose() {
        service.onTerminate(cluster: cluster)
    }

    private func apply(_ frame: LogFrameView) {
        cluster.time = frame.timestamp
        cluster.logPosition = frame.endPosition
        switch frame.type {
        case .sessionOpen:
            let session = ClientSession(id: frame.sessionID, egress: self)
            sessions[frame.sessionID] = session
            session.currentTimestamp = frame.timestamp
            service.onSessionOpen(session, timestamp: frame.timestamp)
            emit(.sessionOpened, sessionID: frame.sessionID, correlation: frame.correlationID, timestamp: frame.timestamp)
        case .sessionMessage:
            guard let session = sessions[frame.sessionID] else { return }
            session.currentSequence = frame.correlationID
            session.currentTimestamp = frame.timestamp
            service.onSessionMessage(session, timestamp: frame.timestamp, message: frame.payload)
            session.currentSequence = 0
            shared.messagesApplied.add(1, ordering: .relaxed)
        case .sessionClose:
            guard let session = sessions.removeValue(forKey: frame.sessionID) else { return }
            session.isOpen = false
            let reason = CloseReason(rawValue: UInt16(truncatingIfNeeded: frame.correlationID)) ?? .clientClosed
            service.onSessionClose(session, timestamp: frame.timestamp, reason: reason)
            emit(.sessionClosed, sessionID: frame.sessionID, correlation: Int64(reason.rawValue), timestamp: frame.timestamp)
        case .padding, .timerEvent, .newLeadershipTerm, .snapshotMarker, .membershipChange:
            break
        }
    }

    private func emit(_ kind: EgressKind, sessionID: Int64, correlation: Int64, timestamp: ClusterTime) {
        guard shared.currentRole == .leader else { return }
        _ = egress.offer(kind: kind, sessionID: sessionID, correlation: correlation, timestamp: timestamp, payload: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// `SessionEgress`: queues a response for the consensus agent; suppressed on followers.
    public func offer(sessionId: Int64, sequence: Int64, timestamp: ClusterTime, message: UnsafeRawBufferPointer) -> OfferResult {
        guard shared.currentRole == .leader else { return .accepted }
        guard message.count <= egress.maxPayloadBytes else { return .tooLarge }
        return egress.offer(kind: .response, sessionID: sessionId, correlation: sequence, timestamp: timestamp, payload: message) ? .accepted : .backPressured
    }
}
