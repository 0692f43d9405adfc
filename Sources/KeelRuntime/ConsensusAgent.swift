import KeelCore
import KeelLog
import KeelRaft
import KeelService
import KeelWire

/// The consensus agent (DESIGN.md decisions 5–8): runs the Raft core over the replicated log and
/// the transport, generic over `Storage`, `Transport` and `Clock` so the same code runs on io_uring
/// (KeelNode) and in the simulator.
///
/// Each duty cycle: reap network completions and handle every frame (Raft messages are stepped at
/// once; client requests gather in the ingress batch); on the leader, turn the whole batch into one
/// proposal and one log append; poll the log's group commit and report what became persisted; tick
/// the core; publish the commit position (release) for the service agent; send the service's egress
/// to clients (leader only); flush the send queues. The core's actions are carried out in the order
/// its documentation requires: hard state fdatasync'ed before anything after it, log writes before
/// the sends that carry them.
public final class ConsensusAgent<S: Storage, T: Transport, C: Clock>: Agent {
    public let roleName = "consensus"
    /// The configuration this member runs.
    public let configuration: ClusterConfiguration
    /// The log (owned by this agent's thread).
    public let log: ReplicatedLog<S>
    /// Positions and role published for other threads.
    public let shared: SharedNodeState
    /// Egress from the service agent.
    public let egress: EgressQueue
    /// Human-readable events (elections, refused handshakes, closed connections); called on this thread.
    public var eventHandler: ((String) -> Void)?
    /// Counters to keep up to date, if a counters file is in use.
    public var counters: NodeCounters?
    /// Where errors go (the node's distinct-error log and its error counters), if one is in use.
    public var errorReporter: ErrorReporter?
    /// Consulted on every connect and reattach (set before `onStart`). Default: accept all.
    public var authenticator: any Authenticator = AcceptAllAuthenticator()
    /// Issues session secrets (leader only; the secret travels in the open entry). The system's
    /// generator, or a seeded one when the agent was given a seed (simulation).
    var secretSource: () -> UInt64
    /// Nonces of the member authentication (with a cluster secret): the OS's random source
    /// (`SystemRandomNumberGenerator` is getrandom(2) on Linux), or a seeded one in simulation.
    var nonceSource: () -> UInt64

    let transport: T
    let clock: C
    let hardStateStore: HardStateStore<S>
    let bootID: UInt64
    var core: RaftCore
    var output = RaftOutput()
    var completions = IOCompletionBuffer(capacity: 1024)

    // Network.
    var memberListener: ConnectionID?
    var clientListener: ConnectionID?
    var connections = ConnectionTable()
    var closing: [PeerConnection] = []
    var peers: [MemberID: PeerConnection] = [:]
    var reconnectAtNanos: [MemberID: Int64] = [:]
    var nextSerial: UInt64 = 1
    let memberFrameBytes: Int
    let clientFrameBytes: Int
    let memberSendQueueBytes = 16 << 20
    let clientSendQueueBytes = 4 << 20
    var scratch: UnsafeMutableRawBufferPointer

    // Leader state.
    var ingress: IngressBatch
    var sessions: [Int64: PeerConnection] = [:]
    var nextSessionCounter: Int64 = 1
    var lastClusterTime: ClusterTime = .zero
    var sessionState = ConsensusSessions()
    var markers = SnapshotMarkers()
    /// The compaction bound a failed compaction was for (not retried until a snapshot moves it).
    var compactionFailedBound: Int64 = -1
    var control = ClusterControlState()

    // Replicated state learnt from the service agent (every member), acted on by the leader.
    var timers = ConsensusTimers()
    /// Set on becoming leader: scan the unapplied log for timer events before firing any.
    var needsLeaderTimerScan = false
    /// Sessions the service asked to close, not yet closed, in the order it asked (log order), and
    /// whether this leader appended the close.
    var serviceCloseRequests: [(sessionID: Int64, appended: Bool)] = []

    // Snapshot transfers to followers (leader) or from the leader (follower).
    let shipping = SnapshotShipping<S>()

    // Follower state: the AppendEntries being stepped, and the head of a frame split across two of them.
    var currentAppend: IncomingAppend?
    let carry: SplitFrameCarry

    var reportedPersisted: LogPosition
    var publishedCommit: LogPosition = .zero
    var lastTickNanos: Int64 = .min
    var nowNanos: Int64 = 0
    var stopped = false

    /// Opens (or creates) the log and hard state in `storage` and restores the Raft core from them.
    /// Throws a `ConfigurationError` when the directory belongs to another cluster.
    public init(
        configuration: ClusterConfiguration, storage: S, transport: T, clock: C, shared: SharedNodeState,
        egress: EgressQueue, bootID: UInt64, seed: UInt64? = nil
    ) throws {
        self.configuration = configuration
        self.transport = transport
        self.clock = clock
        self.shared = shared
        self.egress = egress
        self.bootID = bootID
        let logConfiguration = LogConfiguration(
            clusterID: configuration.clusterID, segmentLengthBytes: configuration.segmentLengthBytes,
            maxPayloadBytes: configuration.maxMessageBytes, durability: configuration.durability)
        hardStateStore = try HardStateStore(storage: storage)
        if let stored = hardStateStore.current, stored.clusterID != configuration.clusterID {
            throw ConfigurationError(
                "directory \(storage.location) belongs to another cluster (cluster id \(stored.clusterID), this configuration's '\(configuration.clusterName)' is \(configuration.clusterID))")
        }
        log = try ReplicatedLog(storage: storage, configuration: logConfiguration)
        let stored = hardStateStore.current
        // A wiped member rejoining must not vote with what it forgot (it may have voted in a term before).
        let freshBootID = configuration.rejoining ? RaftHardState.forgottenBootID : bootID
        let hardState = RaftHardState(
            term: stored?.currentTerm ?? .zero, votedFor: stored?.votedFor,
            votingBootID: stored.map { UInt64(truncatingIfNeeded: $0.bootID) } ?? freshBootID)
        if stored == nil {
            try hardStateStore.save(HardState(currentTerm: .zero, votedFor: nil, clusterID: configuration.clusterID, bootID: UInt128(freshBootID)))
        }
        var termIndex = TermIndex(startPosition: log.startPosition, startTerm: log.termIndex.logStartTerm)
        for (index, run) in log.termIndex.entries.enumerated() {
            let end = index + 1 < log.termIndex.entries.count ? log.termIndex.entries[index + 1].start : log.appendedPosition
            if end > run.start { termIndex.append(term: run.term, to: end) }
        }
        var raft = RaftConfiguration(selfID: configuration.selfID, members: configuration.members.map(\.id), durability: configuration.durability)
        raft.electionTimeoutMinNanos = configuration.electionTimeoutMinNanos
        raft.electionTimeoutMaxNanos = configuration.electionTimeoutMaxNanos
        raft.heartbeatIntervalNanos = configuration.heartbeatIntervalNanos
        raft.windowBytesMax = 4 << 20
        raft.appendBytesMax = 1 << 20
        let random = SeededRandom(seed: seed ?? (UInt64(bitPattern: clock.epochNanos()) ^ UInt64(configuration.selfID.rawValue) &* 0x9E37_79B9))
        if let seed {
            var secrets = SeededRandom(seed: seed ^ 0x5EC2_E75E_C2E7_5EC2)
            secretSource = { secrets.next() }
            var nonces = SeededRandom(seed: seed ^ 0x0A0C_E5EE_D0A0_CE5E)
            nonceSource = { nonces.next() }
        } else {
            secretSource = {
                var system = SystemRandomNumberGenerator()
                return system.next()
            }
            nonceSource = {
                var system = SystemRandomNumberGenerator()
                return system.next()
            }
        }
        core = RaftCore(
            configuration: raft, hardState: hardState, termIndex: termIndex, persistedPosition: log.durablePosition,
            bootID: bootID, random: random, nowNanos: clock.monotonicNanos())
        reportedPersisted = log.durablePosition
        memberFrameBytes = AppendEntriesFrame.fixedBytes + Int(raft.appendBytesMax) + 4096
        clientFrameBytes = RequestFrame.fixedBytes + configuration.maxMessageBytes
        scratch = .allocate(byteCount: 4096, alignment: 16)
        carry = SplitFrameCarry(maxFrameBytes: logConfiguration.maxFrameBytes)
        ingress = IngressBatch(capacityBytes: max(4 << 20, 2 * configuration.maxMessageBytes + 4096))
        lastClusterTime = Self.lastTimestamp(in: log)
        control.logEndAtStart = log.appendedPosition
        shared.appendedPosition.store(log.appendedPosition.rawValue, ordering: .releasing)
        shared.term.store(core.term.rawValue, ordering: .releasing)
    }

    deinit {
        scratch.deallocate()
    }

    static func lastTimestamp(in log: ReplicatedLog<S>) -> ClusterTime {
        var last = ClusterTime.zero
        log.reader.forEachFrame(from: log.startPosition, limit: log.appendedPosition) { frame in
            last = max(last, frame.timestamp)
            return true
        }
        return last
    }

    /// The current Raft role, term, leader and positions (this thread only).
    public var role: RaftRole { core.role }
    public var term: Term { core.term }
    public var leader: MemberID? { core.leaderID }
    public var commitPosition: LogPosition { core.commitPosition }
    /// Replicated mode, after a power loss: a non-voting member until a leader has caught it up.
    public var isCatchingUp: Bool { core.catchingUp }

    // MARK: Agent

    /// Listens on this member's member and client ports.
    public func onStart() throws {
        let me = configuration.selfEndpoint
        let members = try transport.listen(host: me.host, port: me.memberPort)
        memberListener = members
        try transport.submitAccept(members, token: NetworkToken.make(.acceptMember))
        let clients = try transport.listen(host: me.host, port: me.clientPort)
        clientListener = clients
        try transport.submitAccept(clients, token: NetworkToken.make(.acceptClient))
        nowNanos = clock.monotonicNanos()
        counters?.logStartPosition.set(log.startPosition.rawValue)
        event("member \(configuration.selfID.rawValue) started: log \(log.startPosition.rawValue)…\(log.appendedPosition.rawValue), term \(core.term.rawValue)")
    }

    public func doWork(nowNanos: Int64) throws -> Int {
        self.nowNanos = nowNanos
        var work = try reapNetwork()
        work += try drainUndrainedClients()
        work += drainServiceRequests()
        work += try pollSnapshotInstall()
        work += fireDueTimers()
        proposeSnapshotMarker()
        work += try proposeIngress()
        work += try log.poll(nowNanos: nowNanos)
        work += reportPersisted()
        if nowNanos &- lastTickNanos >= 1_000_000 || lastTickNanos == .min {
            lastTickNanos = nowNanos
            try step(.tick(nowNanos: nowNanos))
            connectToPeers()
            publishSnapshotCounters()
            try compactLogIfDue()
        }
        work += publishCommit()
        work += scanForTimeouts(nowNanos: nowNanos)
        work += drainEgress()
        work += superviseControl()
        work += pumpSnapshotTransfers()
        work += flushSends()
        return work
    }

    public func onClose() {
        stopped = true
        _ = try? log.commitBatch()
        _ = try? log.waitUntilDurable(log.appendedPosition, timeoutNanos: 2_000_000_000)
        for connection in Array(connections.values) { close(connection, reason: nil) }
        if let memberListener { transport.close(memberListener) }
        if let clientListener { transport.close(clientListener) }
    }

    func event(_ text: String) { eventHandler?(text) }

    /// Records an error in the error log (with the epoch time) and tells the event handler.
    func reportError(_ kind: ErrorKind, _ message: String) {
        errorReporter?.report(kind, message, epochNanos: clock.epochNanos())
        event(message)
    }

    // MARK: Raft

    /// Steps the core and carries out its actions in order.
    func step(_ input: RaftInput) throws {
        output.removeAll()
        core.step(input, into: &output)
        for action in output.actions { try execute(action) }
    }

    func execute(_ action: RaftAction) throws {
        switch action {
        case .persistHardState(let state):
            try hardStateStore.save(HardState(
                currentTerm: state.term, votedFor: state.votedFor, clusterID: configuration.clusterID, bootID: UInt128(state.votingBootID)))
        case .truncate(let position):
            try truncateLog(from: position)
        case .append(let from, let to, let term, let kind):
            try appendToLog(from: from, to: to, term: term, kind: kind)
        case .send(let member, let message):
            send(message, to: member)
        case .sendSnapshot(let member):
            startSnapshotTransfer(to: member)
        case .commitAdvanced:
            break  // published once per cycle, clamped to whole frames in the log
        case .proposalRefused(let bytes, _):
            event("proposal of \(bytes) bytes refused: not the leader")
        case .roleChanged(let role, let term, let leader):
            roleChanged(role: role, term: term, leader: leader)
        }
    }

    func roleChanged(role: RaftRole, term: Term, leader: MemberID?) {
        let serviceRole: ClusterRole = switch role {
        case .leader: .leader
        case .candidate, .preCandidate: .candidate
        case .follower: .follower
        }
        let wasLeader = shared.currentRole == .leader
        shared.term.store(term.rawValue, ordering: .releasing)
        shared.leaderID.store(leader?.rawValue ?? -1, ordering: .releasing)
        shared.role.store(serviceRole.rawValue, ordering: .releasing)
        shared.wakeService()
        counters?.term.set(term.rawValue)
        let roleValue: RoleCounterValue = switch role {
        case .leader: .leader
        case .candidate: .candidate
        case .preCandidate: .preCandidate
        case .follower: .follower
        }
        counters?.role.set(roleValue.rawValue)
        let electionState: ElectionStateCounterValue = switch role {
        case .leader: .settled
        case .candidate: .vote
        case .preCandidate: .preVote
        case .follower: leader == nil ? .awaitingLeader : .settled
        }
        counters?.electionState.set(electionState.rawValue)
        event("member \(configuration.selfID.rawValue): \(role) in term \(term.rawValue), leader \(leader.map { "\($0.rawValue)" } ?? "unknown")")
        if wasLeader && role != .leader {
            // Clients must follow the new leader: drop their connections and the batch they fed.
            for connection in Array(connections.values) where connection.kind == .client { close(connection, reason: "leadership lost") }
            sessions.removeAll()
            ingress.removeAll()
            timers.batchDropped()
            controlOnLosingLeadership()
        }
        if role == .leader {
            nextSessionCounter = 1
            needsLeaderTimerScan = true
            for index in serviceCloseRequests.indices { serviceCloseRequests[index].appended = false }
            if !wasLeader { controlOnBecomingLeader() }
        }
        if (role == .leader) != wasLeader { sessionsOnRoleChange(isLeader: role == .leader) }
    }

    /// Tells the core what the log made durable (durable mode) or wrote (replicated mode).
    func reportPersisted() -> Int {
        let position = log.acknowledgedPosition
        guard position > reportedPersisted, let term = log.term(before: position) else { return 0 }
        reportedPersisted = position
        counters?.durablePosition.set(log.durablePosition.rawValue)
        try? step(.persisted(upTo: position, term: term))
        return 1
    }

    /// Publishes the commit position (release), never past the last whole frame in the local log.
    func publishCommit() -> Int {
        shared.appendedPosition.store(log.appendedPosition.rawValue, ordering: .releasing)
        counters?.appendPosition.set(log.appendedPosition.rawValue)
        let target = min(core.commitPosition, log.appendedPosition)
        guard target > publishedCommit else { return 0 }
        foldCommittedSessions(upTo: target)
        publishedCommit = target
        shared.commitPosition.store(target.rawValue, ordering: .releasing)
        counters?.commitPosition.set(target.rawValue)
        shared.wakeService()
        return 1
    }
}
