import KeelCore
import KeelExamples
import KeelRuntime
import KeelService
import KeelSimulation
import KeelWire

/// Three members (consensus + service agents, echo service by default) on simulated disks, network
/// and clock, all driven from the test's thread one millisecond of virtual time per round.
final class SimulatedClusterHarness<Service: ClusteredService> {
    final class Member {
        let disk: SimulatedDisk
        var transport: SimulatedTransport
        var consensus: ConsensusAgent<SimulatedStorage, SimulatedTransport, SimulatedClock>
        var service: ServiceAgent<Service>
        var shared: SharedNodeState
        var snapshots: NodeSnapshots<SimulatedStorage>?
        /// The position of the snapshot this incarnation restarted from.
        var restoredFrom: LogPosition?
        var isUp = true

        init(disk: SimulatedDisk, transport: SimulatedTransport, consensus: ConsensusAgent<SimulatedStorage, SimulatedTransport, SimulatedClock>, service: ServiceAgent<Service>, shared: SharedNodeState) {
            self.disk = disk
            self.transport = transport
            self.consensus = consensus
            self.service = service
            self.shared = shared
        }
    }

    /// Snapshots and compaction for every member (nil: neither).
    struct Snapshotting {
        var intervalBytes: Int64
        var kept: Int
        var compactionSlackBytes: Int64?
        var segmentLengthBytes: Int64
        var maxMessageBytes: Int
    }

    let time = SimulatedTimeSource()
    let seed: UInt64
    let durability: DurabilityMode
    let network: SimulatedNetwork
    let endpoints: [MemberEndpoint]
    var members: [Member] = []
    var events: [String] = []
    let makeService: (Int) -> Service
    let snapshotting: Snapshotting?
    /// Each member's cluster secret (`ClusterConfiguration.clusterSecret`), by index.
    let clusterSecrets: [[UInt8]?]

    init(
        seed: UInt64, durability: DurabilityMode = .durable, snapshotting: Snapshotting? = nil, clusterSecrets: [[UInt8]?] = [nil, nil, nil],
        makeService: @escaping (Int) -> Service
    ) throws {
        self.makeService = makeService
        self.snapshotting = snapshotting
        self.clusterSecrets = clusterSecrets
        self.seed = seed
        self.durability = durability
        network = SimulatedNetwork(seed: seed, timeSource: time, faults: .none)
        endpoints = (0..<3).map { MemberEndpoint(id: MemberID(Int32($0)), host: "10.0.0.\($0 + 1)", memberPort: 9010, clientPort: 9020) }
        for index in 0..<3 {
            let disk = SimulatedDisk(seed: seed &+ UInt64(index), configuration: SimulatedDiskConfiguration(name: "disk\(index)", faults: .keepAllUnsynced))
            members.append(try makeMember(index, disk: disk, durability: durability, seed: seed))
        }
    }

    func configuration(_ index: Int, durability: DurabilityMode) throws -> ClusterConfiguration {
        var configuration = try ClusterConfiguration(clusterName: "sim", members: endpoints, selfID: MemberID(Int32(index)), durability: durability)
        configuration.segmentLengthBytes = 1 << 20
        configuration.maxMessageBytes = 64 << 10
        if let snapshotting {
            configuration.segmentLengthBytes = snapshotting.segmentLengthBytes
            configuration.maxMessageBytes = snapshotting.maxMessageBytes
            configuration.snapshotIntervalBytes = snapshotting.intervalBytes
            configuration.snapshotsKept = snapshotting.kept
            configuration.compactionSlackBytes = snapshotting.compactionSlackBytes
        }
        configuration.clusterSecret = clusterSecrets[index]
        return configuration
    }

    func makeMember(_ index: Int, disk: SimulatedDisk, durability: DurabilityMode, seed: UInt64) throws -> Member {
        let transport = network.makeTransport(host: endpoints[index].host)
        let shared = SharedNodeState()
        let egress = EgressQueue(capacityBytes: 1 << 20)
        let configuration = try configuration(index, durability: durability)
        let consensus = try ConsensusAgent(
            configuration: configuration, storage: SimulatedStorage(disk: disk), transport: transport,
            clock: SimulatedClock(timeSource: time), shared: shared, egress: egress, bootID: 1, seed: seed &* 31 &+ UInt64(index))
        consensus.eventHandler = { [unowned self] in self.events.append("[\(self.time.nowNanos / 1_000_000) ms] m\(index) \($0)") }
        var snapshots: NodeSnapshots<SimulatedStorage>?
        var restored: ConsensusSnapshotState?
        if snapshotting != nil {
            let archive = try NodeSnapshots(
                storage: SimulatedStorage(disk: disk, directory: "archive"), clusterID: configuration.clusterID, memberID: configuration.selfID,
                members: configuration.members.map(\.id), keepNewest: configuration.snapshotsKept)
            archive.eventHandler = { [unowned self] in self.events.append("[\(self.time.nowNanos / 1_000_000) ms] m\(index) \($0)") }
            restored = try archive.recover(
                logStart: consensus.log.startPosition, logEnd: consensus.log.appendedPosition, responseWindow: configuration.responseWindow)
            if let restored { consensus.restore(from: restored) }
            snapshots = archive
        }
        let service = ServiceAgent(
            service: makeService(index), memberID: MemberID(Int32(index)), reader: consensus.log.reader, shared: shared, egress: egress,
            responseWindow: configuration.responseWindow, snapshots: snapshots, restoring: restored)
        try consensus.onStart()
        try service.onStart()
        let member = Member(disk: disk, transport: transport, consensus: consensus, service: service, shared: shared)
        member.snapshots = snapshots
        member.restoredFrom = restored?.position
        return member
    }

    /// One round: a millisecond passes, the network delivers, every live member runs a duty cycle.
    func round(client: SimulatedTestClient? = nil) throws {
        time.advance(byNanos: 1_000_000)
        network.deliverDue()
        for member in members where member.isUp {
            _ = try member.consensus.doWork(nowNanos: time.nowNanos)
            _ = try member.service.doWork(nowNanos: time.nowNanos)
            _ = try member.consensus.doWork(nowNanos: time.nowNanos)
        }
        client?.poll()
    }

    /// Runs rounds until `condition` holds; returns whether it did within `maxRounds`.
    func run(maxRounds: Int, client: SimulatedTestClient? = nil, until condition: () -> Bool) throws -> Bool {
        for _ in 0..<maxRounds {
            if condition() { return true }
            try round(client: client)
        }
        return condition()
    }

    var leaders: [Int] { members.indices.filter { members[$0].isUp && members[$0].consensus.role == .leader } }

    func crash(_ index: Int) {
        members[index].isUp = false
        members[index].transport.crash()
        members[index].disk.crashProcess()
    }

    /// Starts a crashed member again on its own disk (a new process: new transport, agents and core).
    func restart(_ index: Int) throws {
        precondition(!members[index].isUp, "crash the member before restarting it")
        members[index] = try makeMember(index, disk: members[index].disk, durability: durability, seed: seed &+ 1_000)
    }

    /// Cuts a member's power (unsynced bytes and directory changes may be lost).
    func powerLoss(_ index: Int) {
        members[index].isUp = false
        members[index].transport.crash()
        members[index].disk.powerLoss()
    }
}

extension SimulatedClusterHarness where Service == EchoService {
    convenience init(
        seed: UInt64, durability: DurabilityMode = .durable, snapshotting: Snapshotting? = nil, clusterSecrets: [[UInt8]?] = [nil, nil, nil]
    ) throws {
        try self.init(seed: seed, durability: durability, snapshotting: snapshotting, clusterSecrets: clusterSecrets) { _ in EchoService() }
    }
}

/// A minimal client speaking the wire protocol over a simulated transport: connects, follows
/// redirects, opens a session, sends numbered requests and collects the echoes; after losing the
/// leader it reattaches the session and resends what is unanswered with the original sequences.
final class SimulatedTestClient {
    let transport: SimulatedTransport
    let endpoints: [MemberEndpoint]
    var connection: ConnectionID?
    var connected = false
    let decoder = FrameStreamDecoder(maxFrameLengthBytes: 1 << 20)
    var completions = IOCompletionBuffer(capacity: 256)
    var sendBuffers: [UnsafeMutableRawBufferPointer] = []
    var receiving = false
    var sessionID: Int64?
    var secret: UInt64 = 0
    /// The session is open on the current connection.
    var attached = false
    /// Requests not yet answered, by sequence.
    var unanswered: [(sequence: Int64, frame: [UInt8])] = []
    var highestAnswered: Int64 = 0
    var nextSequence: Int64 = 1
    var target = 0
    var retryAtNanos: Int64 = 0
    let time: SimulatedTimeSource
    /// Sequences of the responses received, in arrival order, with their payloads.
    var responses: [(sequence: Int64, payload: [UInt8])] = []
    var redirects = 0
    /// Admin answers (status, text) and request rejections (sequence, reason), in arrival order.
    var adminAnswers: [(type: AdminRequestType, status: AdminStatus, text: String)] = []
    var rejections: [(sequence: Int64, reason: RequestRejection)] = []

    init(network: SimulatedNetwork, endpoints: [MemberEndpoint], time: SimulatedTimeSource) {
        transport = network.makeTransport(host: "10.0.1.1")
        self.endpoints = endpoints
        self.time = time
    }

    func start(at index: Int) {
        target = index
        attached = false
        connected = false
        receiving = false
        decoder.reset()
        connection = try? transport.submitConnect(host: endpoints[index].host, port: endpoints[index].clientPort, token: IOToken(1))
    }

    func send(_ frame: [UInt8]) {
        guard let connection else { return }
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: frame.count, alignment: 8)
        buffer.copyBytes(from: frame)
        sendBuffers.append(buffer)
        try? transport.submitSend(connection, UnsafeRawBufferPointer(buffer), token: IOToken(3))
    }

    func request(_ payload: [UInt8]) {
        guard let sessionID else { return }
        var frame = [UInt8](repeating: 0, count: RequestFrame.encodedLength(payloadByteCount: payload.count))
        frame.withUnsafeMutableBytes { buffer in
            payload.withUnsafeBytes { _ = RequestFrame.encode(into: buffer, sessionID: sessionID, sequence: nextSequence, payload: $0) }
        }
        unanswered.append((nextSequence, frame))
        nextSequence += 1
        if attached { send(frame) }
    }

    /// Sends an admin request on the attached connection.
    func admin(_ type: AdminRequestType, body: [UInt8] = []) {
        var frame = [UInt8](repeating: 0, count: AdminRequestFrame.encodedLength(bodyByteCount: body.count))
        frame.withUnsafeMutableBytes { buffer in
            body.withUnsafeBytes { _ = AdminRequestFrame.encode(into: buffer, correlationID: 5, requestType: type, body: $0) }
        }
        send(frame)
    }

    /// Sends every unanswered request again, in order (after a rejection).
    func resendUnanswered() {
        guard attached else { return }
        for request in unanswered { send(request.frame) }
    }

    func poll() {
        completions.removeAll()
        transport.reapCompletions(into: &completions)
        for index in 0..<completions.count {
            let completion = completions[index]
            switch completion.token.rawValue {
            case 1:
                guard completion.succeeded else { failed(); continue }
                connected = true
                let none = UnsafeRawBufferPointer(start: nil, count: 0)
                var frame = [UInt8](repeating: 0, count: ReattachFrame.encodedLength(credentialsByteCount: 0))
                let length = frame.withUnsafeMutableBytes { buffer in
                    if let sessionID { ReattachFrame.encode(into: buffer, correlationID: 77, sessionID: sessionID, secret: secret, credentials: none) }
                    else { ConnectFrame.encode(into: buffer, correlationID: 77, credentials: none) }
                }
                send(Array(frame[0..<length]))
                postReceive()
            case 2:
                receiving = false
                guard completion.result > 0 else { failed(); continue }
                decoder.didReceive(byteCount: Int(completion.result))
                handleFrames()
                postReceive()
            default:
                break
            }
        }
        if connection == nil && time.nowNanos >= retryAtNanos { start(at: target) }
    }

    private func postReceive() {
        guard let connection, !receiving else { return }
        receiving = true
        try? transport.submitReceive(connection, into: decoder.receiveSpace(), token: IOToken(2))
    }

    private func failed() {
        if let connection { transport.close(connection) }
        connection = nil
        attached = false
        target = (target + 1) % endpoints.count
        retryAtNanos = time.nowNanos + 50_000_000
    }

    private func handleFrames() {
        while let frame = try? decoder.nextFrame() {
            guard let message = try? WireMessage(validating: frame) else { failed(); return }
            switch message {
            case .redirect(let redirect):
                redirects += 1
                let leader = Int(redirect.leaderMemberID.rawValue)
                if let connection { transport.close(connection) }
                connection = nil
                attached = false
                target = leader
                retryAtNanos = time.nowNanos
                return
            case .connectRejected:
                failed()
                return
            case .sessionOpened(let opened):
                sessionID = opened.sessionID
                secret = opened.secret
                attached = true
                for request in unanswered { send(request.frame) }
            case .response(let response):
                if response.isResent && response.sequence <= highestAnswered { continue }
                highestAnswered = max(highestAnswered, response.sequence)
                unanswered.removeAll { $0.sequence <= response.sequence }
                responses.append((response.sequence, Array(response.payload)))
            case .adminResponse(let answer):
                adminAnswers.append((answer.requestType, answer.status, String(decoding: answer.body, as: UTF8.self)))
            case .requestRejected(let rejected):
                rejections.append((rejected.sequence, rejected.reason))
            default:
                break
            }
        }
    }
}
