import KeelArchive
import KeelCore
import KeelLog
import KeelService
import KeelWire

/// The service agent (DESIGN.md decision 8): reads committed entries straight from the mapped log,
/// in order, up to the commit position the consensus agent publishes (acquire), and calls the
/// service. Its egress goes back over the SPSC `EgressQueue`; on a follower it is suppressed at the
/// source (replicas run the same code; only the leader's replica answers clients). What the service
/// changes in the replicated state kept by the runtime — timers, service-requested closes — goes to
/// the consensus agent over the SPSC `ServiceRequestQueue`, in log order, on every member.
public final class ServiceAgent<Service: ClusteredService>: Agent, SessionEgress, ClusterControl {
    public let roleName = "service"
    /// The service (read it only from this agent's thread, or after the agent stopped).
    public var service: Service { servicePointer.pointee }
    /// The service as given, before `onStart`: a snapshot installed from the leader replaces the
    /// running service's state with a fresh copy of this one, started from the snapshot. (For a
    /// service of value type — every `ClusteredService` is one in practice, its callbacks being
    /// `mutating` — this is a pristine instance.)
    private let pristineService: Service
    let responseWindow: ResponseWindowLimits
    /// The service's handle on the node.
    public let cluster: Cluster
    let reader: LogReader
    let shared: SharedNodeState
    let egress: EgressQueue
    let requests: ServiceRequestQueue
    /// The services' handles on the open sessions, by the session table's slots (nil: free).
    var sessions: [ClientSession?] = []
    /// The replicated timers as of the last entry applied.
    public private(set) var timers = ReplicatedTimers()
    /// Requests the queue had no room for, sent first next time (the agent applies nothing new
    /// until they are out, so at most one entry's requests wait here).
    var overflow: [ServiceRequest] = []
    /// The replicated session state: sequences and response windows (snapshots serialise it).
    public var sessionTable: SessionTable { state.pointee.sessionTable }
    /// Leader: responses not sent because the egress queue was full (they stay in the window, so a
    /// retry of the request still gets them).
    public var responsesDroppedEgressFull: Int64 { state.pointee.responsesDroppedEgressFull }
    /// Every entry below this position has been applied.
    public internal(set) var appliedPosition: LogPosition
    /// The cluster is suspended as of the last entry applied (replicated state; in snapshots).
    public internal(set) var suspended = false
    /// The local log's end when the agent started: entries below it are a replay (a shutdown entry
    /// there does not stop the node again).
    var logEndAtStart: LogPosition = .zero
    // What applying a message reads and writes lives outside the object: a class's stored `var`s
    // are checked for exclusive access at run time on every access (`swift_beginAccess`, with a
    // thread-local access set) — with the service and the session table as stored properties,
    // those checks were about half of this thread's time per message at 300,000 msg/s. Touched
    // only on this agent's thread (and read after it stopped). Two pointers, not one to a struct
    // generic over `Service`: that struct's metadata was looked up on every access.
    private let servicePointer: UnsafeMutablePointer<Service>
    private let state: UnsafeMutablePointer<ServiceAgentState>
    /// What the sessions offer their responses to (held strongly by each `ClientSession`).
    private let port: ServiceEgressPort
    var lastRole: ClusterRole?
    /// Timer events applied that fired a timer (for counters and tests).
    public private(set) var timersFired: Int64 = 0
    /// A request the consensus agent should see soon was queued this cycle.
    var wakeConsensus = false
    /// The node's snapshot archive (nil: the node takes no snapshots).
    let snapshots: (any SnapshotKeeping)?
    /// Human-readable events (snapshots, restore and replay progress).
    public var eventHandler: ((String) -> Void)?
    /// Replay after a restart: progress lines until the log found at start is applied.
    var replay: ReplayProgress?
    /// Monotonic ns for pacing progress lines of long loads and replays (nil: no lines).
    public var progressClock: (() -> Int64)?
    /// Set by a host running this agent on the consensus thread (`ClusterNode`'s adaptive threading):
    /// the most entries one `doWork` applies, so a burst cannot hold up consensus for long (nil: all
    /// that is committed).
    public var entriesPerCycleLimit: Int?
    /// Set by the same host: stop before an entry that takes a snapshot (a snapshot marker, a
    /// shutdown) instead of applying it — the snapshot would stall consensus for as long as it
    /// takes; `isHeldAtSnapshotMarker` then says so and the host hands the agent to its own thread.
    public var holdsSnapshotMarkers = false
    /// True when the last `doWork` stopped before such an entry (`holdsSnapshotMarkers`).
    public private(set) var isHeldAtSnapshotMarker = false

    static func takesSnapshot(_ frame: LogFrameView) -> Bool {
        frame.type == .snapshotMarker || (frame.type == .clusterAction && ClusterAction(rawValue: frame.correlationID) == .shutdown)
    }

    /// A service agent reading `reader` from the log's start, or — given `restoring`, the consensus
    /// state of the snapshot the node recovered — from that snapshot's position, with its sessions
    /// and timers. `snapshots` takes the node's snapshots (and hands `onStart` the recovered one's
    /// service state).
    public init(
        service: Service, memberID: MemberID, reader: LogReader, shared: SharedNodeState, egress: EgressQueue,
        responseWindow: ResponseWindowLimits = ResponseWindowLimits(), snapshots: (any SnapshotKeeping)? = nil,
        restoring: ConsensusSnapshotState? = nil
    ) {
        self.pristineService = service
        self.responseWindow = responseWindow
        self.cluster = Cluster(memberId: memberID)
        self.reader = reader
        self.shared = shared
        self.egress = egress
        self.requests = shared.serviceRequests
        self.snapshots = snapshots
        servicePointer = .allocate(capacity: 1)
        servicePointer.initialize(to: service)
        state = .allocate(capacity: 1)
        state.initialize(to: ServiceAgentState(sessionTable: restoring?.sessions ?? SessionTable(limits: responseWindow)))
        port = ServiceEgressPort(state: state, egress: egress, shared: shared)
        self.appliedPosition = restoring?.position ?? .zero
        if let restoring {
            timers = restoring.timers
            suspended = restoring.suspended
            cluster.time = restoring.timestamp
            cluster.logPosition = restoring.position
        }
        overflow.reserveCapacity(64)
        port.control = self
    }

    deinit {
        servicePointer.deinitialize(count: 1)
        servicePointer.deallocate()
        state.deinitialize(count: 1)
        state.deallocate()
    }

    /// Starts the service: from the recovered snapshot's service state when there is one, then
    /// replays the local log after it (egress suppressed: this member is not the leader yet).
    public func onStart() throws {
        let logStart = reader.startPosition
        guard appliedPosition >= logStart else {
            // The entries before the log start were compacted away: only a snapshot at or after it
            // holds the state they made, and the node did not restart from one.
            throw ConfigurationError(
                "the log starts at position \(logStart.rawValue) (compacted), but the service would start at \(appliedPosition.rawValue): it needs a snapshot at or after the log start, and none was loaded")
        }
        cluster.control = self
        try startService()
        let target = LogPosition(shared.appendedPosition.load(ordering: .acquiring))
        logEndAtStart = target
        shared.suspended.store(suspended, ordering: .releasing)
        if let clock = progressClock, target > appliedPosition {
            replay = ReplayProgress(from: appliedPosition, to: target, startNanos: clock(), clock: clock)
        } else {
            shared.replayNanos.store(0, ordering: .relaxed)
            shared.replayDone.store(true, ordering: .releasing)
        }
    }

    /// Calls the service's `onStart` with the sessions of `sessionTable` and the snapshot the node
    /// recovered or installed (if any), then publishes the archive's newest snapshot.
    private func startService() throws {
        let clock = progressClock
        for id in sessionTable.sortedIDs {
            let session = ClientSession(id: id, principal: sessionTable[id]!.principal, egress: port)
            session.currentTimestamp = cluster.time
            setSession(session, slot: state.pointee.sessionTable.slot(of: id)!)
        }
        let reader = snapshots?.takeServiceReader()
        let progressReader = reader.map { ProgressSnapshotReader($0, clock: clock, report: eventHandler) }
        let loadStart = clock?()
        do { try servicePointer.pointee.onStart(cluster: cluster, snapshot: progressReader) } catch {
            guard let reader, let name = snapshots?.recoveredName else { throw error }
            throw SnapshotFormatError(
                "the service (snapshot version \(service.snapshotVersion)) could not restore from \(name), written by service version \(reader.serviceVersion): \(error)")
        }
        if let clock, let loadStart, reader != nil { shared.snapshotLoadNanos.store(clock() - loadStart, ordering: .relaxed) }
        progressReader?.finished()
        snapshots?.finishRecovery()
        publishCompactionBound()
        publishNewestSnapshot()
    }

    private func publishNewestSnapshot() {
        let newest = snapshots?.newestEntry
        shared.newestSnapshot.withLock { $0 = newest }
    }

    public func doWork(nowNanos: Int64) throws -> Int {
        var work = 0
        let role = shared.currentRole
        if role != lastRole {
            lastRole = role
            cluster.role = role
            servicePointer.pointee.onRoleChange(role)
            work += 1
        }
        guard flushOverflow() else { return work }
        if shared.snapshotInstall.requestPending.load(ordering: .acquiring) { return work + (try installReceivedSnapshot()) }
        // Installed: nothing is applied until the consensus agent has the log at the snapshot.
        if shared.snapshotInstall.awaitingLog.load(ordering: .acquiring) { return work }
        let commit = LogPosition(shared.commitPosition.load(ordering: .acquiring))
        guard commit > appliedPosition else { return work }
        var applied: Int64 = 0
        // The leader stops applying while its egress queue is nearly full (followers' egress is
        // suppressed): replicated state never depends on it, only when responses go out.
        let egressReserveBytes = egress.capacityBytes / 4
        let appliedMax = Int64(entriesPerCycleLimit ?? Int.max)
        var heldAt: LogPosition?
        let end = reader.forEachFrame(from: appliedPosition, limit: commit) { frame in
            if holdsSnapshotMarkers && Self.takesSnapshot(frame) {
                heldAt = frame.position
                return false
            }
            state.pointee.applyingPosition = frame.position
            apply(frame)
            applied += 1
            return overflow.isEmpty && applied < appliedMax && (shared.currentRole != .leader || egress.freeBytes >= egressReserveBytes)
        }
        isHeldAtSnapshotMarker = heldAt != nil
        appliedPosition = heldAt ?? end
        send(.applied(upTo: appliedPosition))
        shared.appliedPosition.store(appliedPosition.rawValue, ordering: .releasing)
        if let line = replay?.report(appliedPosition) {
            eventHandler?(line)
            if let done = replay, done.isDone {
                replay = nil
                shared.replayNanos.store(done.elapsedNanos, ordering: .relaxed)
                shared.replayDone.store(true, ordering: .releasing)
            }
        }
        // The applied position alone can wait for the consensus agent's next cycle.
        if wakeConsensus || !egress.isEmpty {
            wakeConsensus = false
            shared.wakeConsensus()
        }
        return work + Int(applied)
    }

    public func onClose() {
        servicePointer.pointee.onTerminate(cluster: cluster)
    }

    private func apply(_ frame: LogFrameView) {
        cluster.time = frame.timestamp
        cluster.logPosition = frame.endPosition
        cluster.isApplyingEntry = true
        defer { cluster.isApplyingEntry = false }
        switch frame.type {
        case .sessionOpen:
            let opening = SessionOpenEntry.decode(frame.payload) ?? (secret: 0, principal: [])
            guard state.pointee.sessionTable.open(id: frame.sessionID, secret: opening.secret, principal: opening.principal, timestamp: frame.timestamp)
            else { return }
            let session = ClientSession(id: frame.sessionID, principal: opening.principal, egress: port)
            setSession(session, slot: state.pointee.sessionTable.slot(of: frame.sessionID)!)
            session.currentTimestamp = frame.timestamp
            servicePointer.pointee.onSessionOpen(session, timestamp: frame.timestamp)
            emit(.sessionOpened, sessionID: frame.sessionID, correlation: frame.correlationID, timestamp: frame.timestamp)
        case .sessionMessage:
            applyRequest(frame)
        case .sessionClose:
            guard let slot = state.pointee.sessionTable.slot(of: frame.sessionID), let session = sessions[slot] else { return }
            state.pointee.sessionTable.close(id: frame.sessionID)
            sessions[slot] = nil
            session.isOpen = false
            send(.sessionClosed(sessionId: frame.sessionID))
            let reason = CloseReason(rawValue: UInt16(truncatingIfNeeded: frame.correlationID)) ?? .clientClosed
            servicePointer.pointee.onSessionClose(session, timestamp: frame.timestamp, reason: reason)
            emit(.sessionClosed, sessionID: frame.sessionID, correlation: Int64(reason.rawValue), timestamp: frame.timestamp)
        case .timerEvent:
            applyTimerEvent(frame)
        case .snapshotMarker:
            takeSnapshot(at: SnapshotPoint(position: frame.endPosition, term: frame.term, timestamp: frame.timestamp, suspended: suspended))
        case .clusterAction:
            applyClusterAction(frame)
        case .padding, .newLeadershipTerm, .membershipChange:
            break
        }
    }

    /// Every member snapshots when it applies a marker: the runtime's state and the service's, exact
    /// at the marker's end. The consensus agent keeps replicating on its own thread meanwhile; this
    /// agent applies nothing more until the snapshot is written. A failure is reported and the
    /// previous snapshots stay; the node carries on. A marker at or below the newest snapshot (a
    /// replay after a restart) is not taken again.
    func takeSnapshot(at point: SnapshotPoint) {
        guard let snapshots else { return }
        if let newest = snapshots.newestPosition, newest >= point.position { return }
        let start = progressClock?()
        do {
            let taken = try snapshots.takeSnapshot(
                at: point, timers: timers, sessions: sessionTable, serviceVersion: service.snapshotVersion
            ) { writer in try servicePointer.pointee.onTakeSnapshot(writer) }
            shared.snapshotsTaken.add(1, ordering: .relaxed)
            shared.lastSnapshotPosition.store(taken.position.rawValue, ordering: .releasing)
            publishCompactionBound()
            let elapsed = start.flatMap { start in progressClock.map { $0() - start } }
            if let elapsed { shared.lastSnapshotDurationNanos.store(elapsed, ordering: .relaxed) }
            publishNewestSnapshot()
            eventHandler?("\(taken) written\(elapsed.map { " in \($0 / 1_000_000) ms" } ?? "")")
        } catch {
            shared.snapshotsFailed.add(1, ordering: .relaxed)
            eventHandler?("snapshot at position \(point.position.rawValue) failed, previous snapshots kept: \(error)")
        }
    }

    /// Tells the consensus agent how far the log may be compacted: to the oldest snapshot kept (the
    /// archive is durable when this is called; the consensus agent also stays below what this
    /// agent has applied, so it never deletes a segment this agent still reads).
    func publishCompactionBound() {
        guard let bound = snapshots?.compactionBound else { return }
        shared.compactionBound.store(bound.rawValue, ordering: .releasing)
        shared.wakeConsensus()
    }

    /// A snapshot received from the leader (the consensus agent asked, every request made so far is
    /// in the queue): adopt it into the archive, replace the service by a fresh instance started
    /// from it, with its sessions and timers, at its position; then hand its consensus state back
    /// and wait for the consensus agent to bring the log there. A file that fails is reported back
    /// and changes nothing here; a service that cannot start from the snapshot stops the node.
    private func installReceivedSnapshot() throws -> Int {
        guard let request = shared.snapshotInstall.takeRequest() else { return 0 }
        guard let snapshots else {
            shared.snapshotInstall.complete(.failed("this node keeps no snapshots"))
            return 1
        }
        guard appliedPosition < request.offer.position else {
            // Applying past the snapshot and then restarting from it would apply entries twice.
            snapshots.discardReceived(fileName: request.fileName)
            shared.snapshotInstall.complete(.notNeeded(applied: appliedPosition))
            return 1
        }
        let state: ConsensusSnapshotState
        let entry: SnapshotEntry
        do { (state, entry) = try snapshots.installReceived(fileName: request.fileName, offer: request.offer, responseWindow: responseWindow) } catch {
            shared.snapshotInstall.complete(.failed("\(error)"))
            return 1
        }
        for case let session? in sessions { session.isOpen = false }
        sessions.removeAll()
        servicePointer.pointee = pristineService
        self.state.pointee.sessionTable = state.sessions
        timers = state.timers
        cluster.time = state.timestamp
        cluster.logPosition = state.position
        appliedPosition = state.position
        suspended = state.suspended
        replay = nil
        try startService()
        shared.suspended.store(suspended, ordering: .releasing)
        shared.appliedPosition.store(state.position.rawValue, ordering: .releasing)
        shared.lastSnapshotPosition.store(state.position.rawValue, ordering: .releasing)
        shared.replayDone.store(true, ordering: .releasing)
        eventHandler?("the service restarted from \(entry), received from the leader")
        shared.snapshotInstall.complete(.installed(state, entry))
        shared.wakeConsensus()
        return 1
    }

    /// Fires the timer if the event names its current scheduling and its deadline has come
    /// (`ReplicatedTimers.fire`); a stale or duplicate event changes nothing.
    private func applyTimerEvent(_ frame: LogFrameView) {
        guard let event = TimerEventPayload.decode(frame.payload) else { return }
        let id = frame.correlationID
        guard timers.fire(correlationId: id, sequence: event.sequence, at: frame.timestamp) else {
            // Stale: the replicated state no longer holds this scheduling (fired, cancelled or
            // rescheduled; sequences are never reused). Resolve it on the consensus side too, or a
            // leader whose copy still holds it would re-arm and append it again every cycle (seen:
            // whole-node seed 1000008). An early event (still scheduled) stays to be re-armed.
            if timers.timers[id]?.sequence != event.sequence { send(.timerFired(correlationId: id, sequence: event.sequence)) }
            return
        }
        timersFired += 1
        send(.timerFired(correlationId: id, sequence: event.sequence))
        servicePointer.pointee.onTimerEvent(correlationId: id, timestamp: frame.timestamp)
    }

    /// A request, exactly once: the session table decides, in log order, whether it is the next
    /// one (applied), a retry (its responses re-sent from the window), or neither (an error to the
    /// client). Only the first goes to the service.
    private func applyRequest(_ frame: LogFrameView) {
        let sequence = frame.correlationID
        if suspended {
            // Not admitted (the session's sequence stays): the client sends it again after resume.
            let expected = sessionTable[frame.sessionID].map { $0.lastAppliedSequence + 1 } ?? sequence
            reject(frame, expected: max(1, expected), reason: .clusterSuspended)
            return
        }
        let sessionID = frame.sessionID
        guard let slot = state.pointee.sessionTable.slot(of: sessionID) else { return }
        switch state.pointee.sessionTable.admit(slot: slot, sequence: sequence, timestamp: frame.timestamp) {
        case .apply:
            // +0: `sessions` keeps the session alive, and nothing the service can call removes it
            // (closes take effect when their entry is applied) — no retain/release per message.
            guard let session = sessions[slot].map(Unmanaged.passUnretained) else { return }
            state.pointee.applyingSessionID = sessionID
            state.pointee.applyingSlot = slot
            session._withUnsafeGuaranteedRef { session in
                session.currentSequence = sequence
                session.currentTimestamp = frame.timestamp
                servicePointer.pointee.onSessionMessage(session, timestamp: frame.timestamp, message: frame.payload)
                session.currentSequence = 0
            }
            state.pointee.applyingSessionID = 0
            shared.messagesApplied.add(1, ordering: .relaxed)
        case .duplicate:
            guard sendsEgress else { return }
            state.pointee.sessionTable.forEachResponse(slot: slot, of: sequence) { timestamp, payload in
                if !egress.offer(kind: .resentResponse, sessionID: frame.sessionID, correlation: sequence, timestamp: timestamp, payload: payload) {
                    state.pointee.responsesDroppedEgressFull += 1
                }
            }
        case .responseNoLongerAvailable(let expected):
            reject(frame, expected: expected, reason: .responseNoLongerAvailable)
        case .outOfOrder(let expected):
            reject(frame, expected: expected, reason: .sequenceOutOfOrder)
        case .unknownSession:
            break
        }
    }

    private func setSession(_ session: ClientSession, slot: Int) {
        while sessions.count <= slot { sessions.append(nil) }
        sessions[slot] = session
    }

    func reject(_ frame: LogFrameView, expected: Int64, reason: RequestRejection) {
        guard sendsEgress else { return }
        withUnsafeTemporaryAllocation(byteCount: 10, alignment: 8) { payload in
            payload.storeBytes(of: expected, toByteOffset: 0, as: Int64.self)
            payload.storeBytes(of: reason.rawValue, toByteOffset: 8, as: UInt16.self)
            _ = egress.offer(
                kind: .requestRejected, sessionID: frame.sessionID, correlation: frame.correlationID, timestamp: frame.timestamp,
                payload: UnsafeRawBufferPointer(payload))
        }
    }

    private func emit(_ kind: EgressKind, sessionID: Int64, correlation: Int64, timestamp: ClusterTime) {
        guard sendsEgress else { return }
        _ = egress.offer(kind: kind, sessionID: sessionID, correlation: correlation, timestamp: timestamp, payload: UnsafeRawBufferPointer(start: nil, count: 0))
    }

    /// Queues a request for the consensus agent, keeping order behind any that wait in `overflow`.
    func send(_ request: ServiceRequest) {
        if case .applied = request {} else { wakeConsensus = true }
        if overflow.isEmpty && requests.offer(request) { return }
        overflow.append(request)
    }

    /// True once every waiting request is in the queue.
    private func flushOverflow() -> Bool {
        guard !overflow.isEmpty else { return true }
        var sent = 0
        while sent < overflow.count && requests.offer(overflow[sent]) { sent += 1 }
        overflow.removeFirst(sent)
        shared.wakeConsensus()
        return overflow.isEmpty
    }

    /// True when the entry being applied may send egress: this replica leads, and the entry is from
    /// its own term on (`SharedNodeState.leaderEgressStart`: a new leader applying entries its
    /// predecessor already answered must not answer them again).
    var sendsEgress: Bool { port.sendsEgress }

    // MARK: SessionEgress

    /// `SessionEgress`: a response to the request being applied is kept in the session's window
    /// on every replica (the same on all), then queued for the consensus agent on the leader only.
    /// A response the leader's full queue cannot take is dropped from the wire, not from the
    /// window: `.accepted` either way, so replicas stay alike. Unsolicited messages (sequence 0)
    /// are not kept and report back-pressure.
    public func offer(sessionId: Int64, sequence: Int64, timestamp: ClusterTime, message: UnsafeRawBufferPointer) -> OfferResult {
        port.offer(sessionId: sessionId, sequence: sequence, timestamp: timestamp, message: message)
    }

    /// `SessionEgress`: the same as `Cluster.closeSession(id:)`.
    public func requestClose(sessionId: Int64) -> Bool {
        closeSession(id: sessionId)
    }

    // MARK: ClusterControl

    package func scheduleTimer(correlationId: Int64, deadline: ClusterTime) {
        let sequence = timers.schedule(correlationId: correlationId, deadline: deadline)
        send(.scheduleTimer(correlationId: correlationId, deadline: deadline, sequence: sequence))
    }

    package func cancelTimer(correlationId: Int64) -> Bool {
        guard timers.cancel(correlationId: correlationId) else { return false }
        send(.cancelTimer(correlationId: correlationId))
        return true
    }

    package func session(id: Int64) -> ClientSession? {
        state.pointee.sessionTable.slot(of: id).flatMap { sessions[$0] }
    }

    package func closeSession(id: Int64) -> Bool {
        guard state.pointee.sessionTable.slot(of: id) != nil else { return false }
        send(.closeSession(sessionId: id))
        return true
    }
}

/// The service agent's per-message state (see `ServiceAgent.state`).
struct ServiceAgentState {
    var sessionTable: SessionTable
    /// The position of the entry being applied (egress decisions depend on it).
    var applyingPosition: LogPosition = .zero
    /// The request being applied: its session and slot, so that the service's responses reach
    /// the window without a lookup (0: none).
    var applyingSessionID: Int64 = 0
    var applyingSlot = 0
    /// Leader: responses not sent because the egress queue was full.
    var responsesDroppedEgressFull: Int64 = 0
}

/// The service agent's egress as its `ClientSession`s see it. Not generic, and not the agent: each
/// session holds it strongly (a `let`, so an offer retains nothing), and it holds the agent only
/// unowned — no cycle, and no reference counting of the agent per response (which has a side
/// table, so its retains take the slow path).
final class ServiceEgressPort: SessionEgress {
    let state: UnsafeMutablePointer<ServiceAgentState>
    let egress: EgressQueue
    let shared: SharedNodeState
    /// The agent, for closes; it owns this port.
    unowned(unsafe) var control: (any ClusterControl)?

    init(state: UnsafeMutablePointer<ServiceAgentState>, egress: EgressQueue, shared: SharedNodeState) {
        self.state = state
        self.egress = egress
        self.shared = shared
    }

    /// True when the entry being applied may send egress: this replica leads, and the entry is from
    /// its own term on (`SharedNodeState.leaderEgressStart`: a new leader applying entries its
    /// predecessor already answered must not answer them again).
    var sendsEgress: Bool {
        shared.currentRole == .leader && state.pointee.applyingPosition.rawValue >= shared.leaderEgressStart.load(ordering: .acquiring)
    }

    /// `ServiceAgent.offer`: kept in the window on every replica, queued on the leader only.
    func offer(sessionId: Int64, sequence: Int64, timestamp: ClusterTime, message: UnsafeRawBufferPointer) -> OfferResult {
        guard message.count <= egress.maxPayloadBytes else { return .tooLarge }
        if sequence > 0 {
            if sessionId == state.pointee.applyingSessionID {
                state.pointee.sessionTable.recordResponse(slot: state.pointee.applyingSlot, sequence: sequence, timestamp: timestamp, payload: message)
            } else {
                state.pointee.sessionTable.recordResponse(sessionID: sessionId, sequence: sequence, timestamp: timestamp, payload: message)
            }
        }
        guard sendsEgress else { return .accepted }
        if egress.offer(kind: .response, sessionID: sessionId, correlation: sequence, timestamp: timestamp, payload: message) { return .accepted }
        guard sequence > 0 else { return .backPressured }
        state.pointee.responsesDroppedEgressFull += 1
        return .accepted
    }

    func requestClose(sessionId: Int64) -> Bool {
        control?.closeSession(id: sessionId) ?? false
    }
}
