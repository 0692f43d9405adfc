import KeelArchive
import KeelCore
import KeelRuntime
import KeelService

/// Three whole members — consensus agent and service agent over the replicated log on a simulated
/// disk, with a recording echo service — on one simulated network and clock, driven from one
/// thread one millisecond of virtual time per round.
public final class WholeNodeCluster {
    /// One member: its disk outlives its processes; the rest is one process incarnation.
    public final class Member {
        public internal(set) var disk: SimulatedDisk
        /// The disk was wiped once: the member restarts as one rejoining (`ClusterConfiguration.rejoining`).
        public internal(set) var wiped = false
        public internal(set) var transport: SimulatedTransport
        public internal(set) var consensus: ConsensusAgent<SimulatedStorage, SimulatedTransport, SimulatedClock>
        public internal(set) var service: ServiceAgent<RecordingEchoService>
        public internal(set) var recorder: ApplyRecorder
        public internal(set) var shared: SharedNodeState
        public internal(set) var snapshots: NodeSnapshots<SnapshotFaultStorage>
        /// The snapshot this incarnation restarted from (nil: replayed the whole log).
        public internal(set) var restoredFrom: LogPosition?
        public internal(set) var isUp = true
        /// Changes at each power loss (the kernel's boot id).
        public internal(set) var bootID: UInt64 = 1
        /// Process incarnations so far.
        public internal(set) var incarnation = 0

        init(disk: SimulatedDisk, transport: SimulatedTransport, consensus: ConsensusAgent<SimulatedStorage, SimulatedTransport, SimulatedClock>,
             service: ServiceAgent<RecordingEchoService>, recorder: ApplyRecorder, shared: SharedNodeState,
             snapshots: NodeSnapshots<SnapshotFaultStorage>) {
            self.snapshots = snapshots
            self.disk = disk
            self.transport = transport
            self.consensus = consensus
            self.service = service
            self.recorder = recorder
            self.shared = shared
        }
    }

    public let time = SimulatedTimeSource()
    public let seed: UInt64
    public let durability: DurabilityMode
    public let network: SimulatedNetwork
    public let endpoints: [MemberEndpoint]
    public private(set) var members: [Member] = []
    /// Human-readable events from every member, newest last (bounded).
    public private(set) var events: [String] = []
    /// Called on every apply of every member: (member index, entry).
    var onApply: ((Int, ApplyRecorder.Applied) -> Void)?
    /// Called with a member's service-state digest at a position.
    var onDigest: ((Int, LogPosition, StateDigest) -> Void)?
    /// Called as a cut inside snapshot writing takes a member down (index, power loss?), before any
    /// other member runs again: the checks learn what its disk holds.
    var onSnapshotCut: ((Int, Bool) -> Void)?
    /// Members a cut armed in their archive storage took down, not yet seen by the run.
    var cutsStruck: [Int] = []
    /// With compaction: the log's slack behind the oldest kept snapshot (nil: no compaction).
    let compactionSlackBytes: Int64?
    /// Members armed to crash (false) or lose power (true) the moment they next move their log start.
    var compactionCutsArmed: [Int: Bool] = [:]
    /// Armed members that just moved their log start, to take down after this duty cycle.
    var compactionCutsDue: [Int: Bool] = [:]
    /// Log-start moves seen, over every member and incarnation.
    public private(set) var compactions = 0
    /// Called when a member's service reports a problem (a timer fired early, twice, …).
    var onProblem: ((Int, String) -> Void)?

    /// The leader's snapshot interval (nil: no snapshots).
    let snapshotIntervalBytes: Int64?
    /// Moves each member's service agent between "its own thread" and "the consensus thread" as
    /// KeelNode's adaptive threading does (there: few entries per cycle, held before a snapshot
    /// marker), at seeded moments, so that both placements and the moves between them run under faults.
    var placementRandom: SeededRandom
    /// The cluster secret every member proves on its member connections (nil: none).
    let clusterSecret: [UInt8]?

    /// The disks' fault model (a wiped member gets a new disk of the same model).
    let diskFaults: SimulatedFaultModel

    public init(
        seed: UInt64, durability: DurabilityMode, networkFaults: SimulatedNetworkFaults, diskFaults: SimulatedFaultModel,
        snapshotIntervalBytes: Int64? = nil, compactionSlackBytes: Int64? = nil, clusterSecret: [UInt8]? = nil
    ) throws {
        self.seed = seed
        self.diskFaults = diskFaults
        self.durability = durability
        self.snapshotIntervalBytes = snapshotIntervalBytes
        self.compactionSlackBytes = compactionSlackBytes
        placementRandom = SeededRandom(seed: seed ^ 0x9A1A_CE0F_5E2F_1CE5)
        self.clusterSecret = clusterSecret
        network = SimulatedNetwork(seed: seed, timeSource: time, faults: networkFaults)
        endpoints = (0..<3).map { MemberEndpoint(id: MemberID(Int32($0)), host: "10.0.0.\($0 + 1)", memberPort: 9010, clientPort: 9020) }
        for index in 0..<3 {
            let disk = SimulatedDisk(seed: seed &* 7 &+ UInt64(index), configuration: SimulatedDiskConfiguration(name: "disk\(index)", faults: diskFaults))
            members.append(try makeMember(index, disk: disk, bootID: 1, incarnation: 0))
        }
    }

    /// Prints every event as it happens (`keel sim --node --trace`: for a seed whose process dies,
    /// when the events kept for the report are lost with it). Set once, before any run.
    nonisolated(unsafe) public static var traceEvents = false

    func note(_ event: String) {
        if events.count >= 400 { events.removeFirst(200) }
        events.append("[\(time.nowNanos / 1_000_000) ms] \(event)")
        if Self.traceEvents { print(events[events.count - 1]) }
    }

    func makeMember(_ index: Int, disk: SimulatedDisk, bootID: UInt64, incarnation: Int, wiped: Bool = false) throws -> Member {
        var configuration = try ClusterConfiguration(clusterName: "nodesim", members: endpoints, selfID: MemberID(Int32(index)), durability: durability)
        configuration.rejoining = wiped
        configuration.segmentLengthBytes = 1 << 20
        configuration.maxMessageBytes = 64 << 10
        // Partitions and crashes must not end the session (that would void exactly-once for what
        // is outstanding); the window holds every response the client can have outstanding.
        configuration.sessionTimeoutNanos = 120_000_000_000
        configuration.responseWindow = ResponseWindowLimits(requestsMax: 1024, bytesMax: 16 << 20)
        configuration.snapshotIntervalBytes = snapshotIntervalBytes
        configuration.snapshotsKept = 2
        // Compaction deletes whole segments: small ones (two of the largest frames) so it happens.
        configuration.compactionSlackBytes = compactionSlackBytes
        if compactionSlackBytes != nil { configuration.segmentLengthBytes = 192 << 10 }
        configuration.clusterSecret = clusterSecret
        let transport = network.makeTransport(host: endpoints[index].host)
        let shared = SharedNodeState()
        let egress = EgressQueue(capacityBytes: 1 << 20)
        let consensus = try ConsensusAgent(
            configuration: configuration, storage: SimulatedStorage(disk: disk), transport: transport,
            clock: SimulatedClock(timeSource: time), shared: shared, egress: egress, bootID: bootID,
            seed: seed &* 31 &+ UInt64(index) &+ UInt64(incarnation) &* 1_000)
        consensus.eventHandler = { [unowned self] event in
            self.note("m\(index) \(event)")
            // The simulation's one client never sends a malformed frame: one means its byte stream broke.
            if event.hasPrefix("bad frame from a client") { self.onProblem?(index, "the client's byte stream is corrupt (\(event))") }
            if event.hasPrefix("log compacted") { self.compactions += 1 }
            if event.hasPrefix("log compacted"), let powerLoss = self.compactionCutsArmed.removeValue(forKey: index) {
                self.compactionCutsDue[index] = powerLoss
            }
            // Every member has the same secret: no member may ever be refused for it.
            if event.contains("cluster secret") { self.onProblem?(index, "a member was refused for the cluster secret (\(event))") }
        }
        // Small chunks, so a snapshot is many writes and a cut can land between any two.
        let snapshots = try NodeSnapshots(
            storage: SnapshotFaultStorage(SimulatedStorage(disk: disk, directory: "archive")), clusterID: configuration.clusterID,
            memberID: configuration.selfID, members: configuration.members.map(\.id), keepNewest: configuration.snapshotsKept,
            configuration: ArchiveConfiguration(chunkPayloadBytes: 4096))
        snapshots.eventHandler = { [unowned self] in self.note("m\(index) \($0)") }
        consensus.enableSnapshotShipping(archiveStorage: SimulatedStorage(disk: disk, directory: "archive"))
        if let installed = snapshots.newestPastLogEnd(consensus.log.appendedPosition) {
            try consensus.resumeInstall(position: installed.position, term: installed.term)
        }
        let restored = try snapshots.recover(logStart: consensus.log.startPosition, logEnd: consensus.log.appendedPosition, responseWindow: configuration.responseWindow, shared: shared)
        if let restored { consensus.restore(from: restored) }
        let recorder = ApplyRecorder()
        recorder.onApply = { [unowned self] in self.onApply?(index, $0) }
        recorder.onDigest = { [unowned self] in self.onDigest?(index, $0, $1) }
        recorder.onProblem = { [unowned self] in self.onProblem?(index, "service: \($0)") }
        let service = ServiceAgent(
            service: RecordingEchoService(recorder: recorder), memberID: MemberID(Int32(index)), reader: consensus.log.reader, shared: shared,
            egress: egress, responseWindow: configuration.responseWindow, snapshots: snapshots, restoring: restored)
        service.eventHandler = { [unowned self] in self.note("m\(index) \($0)") }
        try consensus.onStart()
        try service.onStart()
        let member = Member(
            disk: disk, transport: transport, consensus: consensus, service: service, recorder: recorder, shared: shared, snapshots: snapshots)
        member.restoredFrom = restored?.position
        member.wiped = wiped
        member.bootID = bootID
        member.incarnation = incarnation
        return member
    }

    /// One round: a millisecond passes, the network delivers, every live member runs its duty cycles.
    func round(client: WholeNodeClient?) throws {
        time.advance(byNanos: 1_000_000)
        network.deliverDue()
        for (index, member) in members.enumerated() where member.isUp {
            _ = try member.consensus.doWork(nowNanos: time.nowNanos)
            if takeDownAfterCompaction(index) { continue }
            movePlacement(member.service)
            _ = try member.service.doWork(nowNanos: time.nowNanos)
            if member.snapshots.archive.storage.didCut {
                // The cut struck while the service agent wrote a snapshot: the process is gone.
                onSnapshotCut?(index, member.snapshots.archive.storage.cutIsPowerLoss)
                snapshotCutStruck(index, powerLoss: member.snapshots.archive.storage.cutIsPowerLoss)
                cutsStruck.append(index)
                continue
            }
            _ = try member.consensus.doWork(nowNanos: time.nowNanos)
            _ = takeDownAfterCompaction(index)
        }
        client?.poll()
    }

    /// Takes member `index` down if an armed cut is due: it just moved its log start (start record
    /// synced, segments deleted, directory synced), and its process dies or its power goes before
    /// it does anything else.
    private func takeDownAfterCompaction(_ index: Int) -> Bool {
        guard let powerLoss = compactionCutsDue.removeValue(forKey: index) else { return false }
        onSnapshotCut?(index, powerLoss)
        members[index].isUp = false
        members[index].transport.crash()
        members[index].disk.crashProcess()
        if powerLoss {
            members[index].disk.losePageCache()
            members[index].bootID += 1
        }
        note("FAULT m\(index) \(powerLoss ? "power loss" : "process crash") right after moving its log start")
        cutsStruck.append(index)
        return true
    }

    /// Arms a crash or power loss for the moment member `index` next moves its log start.
    func armCompactionCut(_ index: Int, powerLoss: Bool) {
        compactionCutsArmed[index] = powerLoss
        note("FAULT m\(index) armed a \(powerLoss ? "power loss" : "crash") at its next log compaction")
    }

    /// On "the consensus thread" the agent stops before a snapshot marker and then moves to "its own
    /// thread", which takes the snapshot; otherwise it moves one way or the other about every 50 rounds.
    private func movePlacement(_ service: ServiceAgent<RecordingEchoService>) {
        let onConsensusThread = service.holdsSnapshotMarkers
        guard service.isHeldAtSnapshotMarker || placementRandom.next() % 50 == 0 else { return }
        if onConsensusThread {
            service.holdsSnapshotMarkers = false
            service.entriesPerCycleLimit = nil
        } else {
            service.holdsSnapshotMarkers = true
            service.entriesPerCycleLimit = 1 + Int(placementRandom.next() % 4)
        }
    }

    /// Every member's service and runtime hold no pending timer (all scheduled ones fired or were cancelled).
    var timersSettled: Bool {
        members.allSatisfy { $0.service.service.expectedTimers.isEmpty && $0.service.timers.count == 0 }
    }

    /// Members up and leading.
    public var leaders: [Int] { members.indices.filter { members[$0].isUp && members[$0].consensus.role == .leader } }

    /// Kills member `index`'s process: the page cache (unsynced writes) survives.
    func crash(_ index: Int) {
        members[index].isUp = false
        members[index].transport.crash()
        members[index].disk.crashProcess()
        note("FAULT m\(index) process crash")
    }

    /// Cuts member `index`'s power: unsynced bytes may be lost or torn; the next boot has a new boot id.
    func powerLoss(_ index: Int) {
        members[index].isUp = false
        members[index].transport.crash()
        members[index].disk.powerLoss()
        members[index].bootID += 1
        note("FAULT m\(index) power loss")
    }

    /// Stops member `index` and gives it a new, empty disk (same member id): it restarts as a member
    /// rejoining with its state forgotten.
    func wipe(_ index: Int) {
        members[index].isUp = false
        members[index].transport.crash()
        members[index].bootID += 1
        members[index].wiped = true
        let incarnation = UInt64(members[index].incarnation + 1)
        members[index].disk = SimulatedDisk(
            seed: seed &* 7 &+ UInt64(index) &+ incarnation &* 1_000_003,
            configuration: SimulatedDiskConfiguration(name: "disk\(index)w\(incarnation)", faults: diskFaults))
        note("FAULT m\(index) wiped (a new empty disk)")
    }

    /// Moves the leader's log start up to its newest snapshot (as compaction would).
    func moveLeaderLogStart() throws -> Bool {
        guard let leader = leaders.first, let start = try members[leader].consensus.moveLogStartToNewestSnapshot() else { return false }
        note("m\(leader) log start moved to \(start.rawValue)")
        return true
    }

    /// Arms a cut in member `index`'s archive storage `operations` storage operations from now.
    func armSnapshotCut(_ index: Int, afterOperations operations: Int, powerLoss: Bool) {
        let storage = members[index].snapshots.archive.storage
        storage.cutAfterOperations = operations
        storage.cutIsPowerLoss = powerLoss
        note("FAULT m\(index) armed a \(powerLoss ? "power loss" : "crash") \(operations) archive operations ahead")
    }

    /// Disarms every armed cut (the faults stop).
    func disarmSnapshotCuts() {
        for member in members { member.snapshots.archive.storage.cutAfterOperations = nil }
        compactionCutsArmed.removeAll()
    }

    /// Takes member `index` down after a cut struck its disk inside a snapshot.
    func snapshotCutStruck(_ index: Int, powerLoss: Bool) {
        members[index].isUp = false
        members[index].transport.crash()
        if powerLoss {
            members[index].disk.losePageCache()
            members[index].bootID += 1
        }
        note("FAULT m\(index) \(powerLoss ? "power loss" : "process crash") while writing a snapshot")
    }

    /// Starts a stopped member again on its own disk (a new process).
    func restart(_ index: Int) throws {
        precondition(!members[index].isUp, "stop the member before restarting it")
        let old = members[index]
        members[index] = try makeMember(index, disk: old.disk, bootID: old.bootID, incarnation: old.incarnation + 1, wiped: old.wiped)
        note("m\(index) restarted (boot \(old.bootID), snapshot \(members[index].restoredFrom.map { "\($0.rawValue)" } ?? "none"), appended \(members[index].consensus.log.appendedPosition.rawValue), durable \(members[index].consensus.log.durablePosition.rawValue))")
    }
}
