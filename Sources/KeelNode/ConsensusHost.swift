import KeelCore
import KeelIO
import KeelRuntime
import KeelService

/// The consensus agent's thread body: builds the io_uring storage, transport and the
/// `ConsensusAgent` on its own thread (a ring belongs to the thread that first uses it), reports
/// the start to `ClusterNode`, then runs the agent — and the service agent on the same thread in
/// shared-thread mode, or, in adaptive mode, while `ServicePlacement` gives it to this thread.
final class ConsensusHost<Service: ClusteredService>: Agent {
    let roleName: String
    let configuration: ClusterConfiguration
    let directory: String
    let ring: Ring
    let shared: SharedNodeState
    let egress: EgressQueue
    let startup: NodeStartup
    var sharedService: Service?
    let authenticator: any Authenticator
    var consensus: ConsensusAgent<IOUringStorage, IOUringTransport, SystemClock>?
    var service: ServiceAgent<Service>?
    var countersFile: CountersFile?
    var errorLogFile: ErrorLogFile?
    let snapshots: ThreadHandoff<NodeSnapshots<IOUringStorage>>
    /// Adaptive threading: where the service agent runs, and this thread's load.
    let placement: ServicePlacement<Service>?
    let clock = SystemClock()
    var window = LoadWindow(windowNanos: 10_000_000)
    var busyWindows = WindowStreak()

    init(
        configuration: ClusterConfiguration, directory: String, ring: Ring, shared: SharedNodeState, egress: EgressQueue,
        startup: NodeStartup, sharedService: Service?, authenticator: any Authenticator,
        snapshots: ThreadHandoff<NodeSnapshots<IOUringStorage>>, placement: ServicePlacement<Service>?
    ) {
        self.snapshots = snapshots
        self.placement = placement
        if let placement { window = LoadWindow(windowNanos: placement.rules.windowNanos) }
        self.authenticator = authenticator
        self.roleName = sharedService == nil ? "consensus" : "node"
        self.configuration = configuration
        self.directory = directory
        self.ring = ring
        self.shared = shared
        self.egress = egress
        self.startup = startup
        self.sharedService = sharedService
    }

    func onStart() throws {
        do {
            let storage = try IOUringStorage(directory: directory + "/log", ring: ring)
            let transport = IOUringTransport(ring: ring)
            let agent = try ConsensusAgent(
                configuration: configuration, storage: storage, transport: transport, clock: SystemClock(), shared: shared,
                egress: egress, bootID: currentBootID())
            agent.authenticator = authenticator
            // The consensus thread's own view of the archive directory: it reads snapshots it ships
            // and writes those it receives there (the service agent's archive adopts them).
            agent.enableSnapshotShipping(archiveStorage: try IOUringStorage(directory: directory + "/archive", ring: ring))
            agent.eventHandler = { printToStandardError("keel node \(agent.configuration.selfID.rawValue): \($0)") }
            if let file = try? CountersFile.create(directory: directory), let writer = file.writer {
                countersFile = file
                let counters = NodeCounters(writer: writer, rejectionReasons: wireRejectionReasonNames)
                agent.counters = counters
                if let errorFile = try? ErrorLogFile.create(directory: directory), let errorLog = errorFile.writer {
                    errorLogFile = errorFile
                    agent.errorReporter = ErrorReporter(log: errorLog, counters: counters)
                }
            }
            // The newest snapshot the local log can continue from: its runtime state goes to both agents.
            if let installed = snapshots.value.newestPastLogEnd(agent.log.appendedPosition) {
                try agent.resumeInstall(position: installed.position, term: installed.term)
            }
            let restored = try snapshots.value.recover(logStart: agent.log.startPosition, logEnd: agent.log.appendedPosition, responseWindow: configuration.responseWindow, shared: shared)
            if let restored { agent.restore(from: restored) }
            do { try agent.onStart() } catch let error as IOError {
                throw ConfigurationError("cannot listen: \(error)")
            }
            consensus = agent
            if let sharedService = sharedService.take() {
                let serviceAgent = ServiceAgent(
                    service: sharedService, memberID: configuration.selfID, reader: agent.committedReader, shared: shared, egress: egress,
                    responseWindow: configuration.responseWindow, snapshots: snapshots.value, restoring: restored)
                let id = configuration.selfID.rawValue
                serviceAgent.eventHandler = { printToStandardError("keel node \(id): \($0)") }
                serviceAgent.progressClock = { SystemClock().monotonicNanos() }
                try serviceAgent.onStart()
                service = serviceAgent
            }
            startup.succeed(agent.committedReader, restored: restored)
        } catch {
            startup.fail("\(error)")
            throw error
        }
    }

    func doWork(nowNanos: Int64) throws -> Int {
        let consensus = consensus!
        var work = try consensus.doWork(nowNanos: nowNanos)
        if let service {
            work += try service.doWork(nowNanos: nowNanos)
            work += try consensus.doWork(nowNanos: nowNanos)
        } else if let placement {
            work += try runPlacedService(placement, consensus: consensus, nowNanos: nowNanos)
        }
        return work
    }

    /// Adaptive threading: runs the service agent after the consensus cycle when this thread has it
    /// (then consensus once more, so its egress goes out in this cycle), and moves it to its own
    /// thread when this thread's load or the service's backlog says so (`AdaptiveThreading`).
    private func runPlacedService(
        _ placement: ServicePlacement<Service>, consensus: ConsensusAgent<IOUringStorage, IOUringTransport, SystemClock>, nowNanos: Int64
    ) throws -> Int {
        let owner = placement.owner
        guard owner != .serviceThread, let agent = placement.agent else {
            if let load = window.add(startNanos: nowNanos, endNanos: clock.monotonicNanos()) {
                placement.consensusLoadMillionths.store(Int(load * 1_000_000), ordering: .relaxed)
            }
            return 0
        }
        if owner == .returnRequested {
            handOut(agent, placement, reason: "the service thread is stopping")
            return 0
        }
        if shared.snapshotInstall.requestPending.load(ordering: .acquiring) {
            // Loading a shipped snapshot may take long: never on this thread.
            handOut(agent, placement, reason: "a shipped snapshot is to be installed")
            return 0
        }
        let applied = try agent.doWork(nowNanos: nowNanos)
        var work = applied
        if applied > 0 { work += try consensus.doWork(nowNanos: nowNanos) }
        let rules = placement.rules
        if agent.isHeldAtSnapshotMarker {
            handOut(agent, placement, reason: "a snapshot marker is next")
        } else if applied >= rules.entriesPerCycleOnConsensusThread
            && shared.commitPosition.load(ordering: .acquiring) > agent.appliedPosition.rawValue
        {
            handOut(agent, placement, reason: "more than \(rules.entriesPerCycleOnConsensusThread) entries are waiting")
        } else if let load = window.add(startNanos: nowNanos, endNanos: clock.monotonicNanos()),
            busyWindows.record(load >= rules.moveOutLoad) >= rules.moveOutWindows
        {
            handOut(agent, placement, reason: "load \(percent(load)) of the consensus thread")
        }
        return work
    }

    private func handOut(_ agent: ServiceAgent<Service>, _ placement: ServicePlacement<Service>, reason: String) {
        agent.holdsSnapshotMarkers = false
        agent.entriesPerCycleLimit = nil
        window.reset()
        busyWindows.reset()
        placement.consensusLoadMillionths.store(0, ordering: .relaxed)
        if placement.owner != .returnRequested { consensus?.eventHandler?("service agent moves to its own thread: \(reason)") }
        placement.handOver(to: .serviceThread)
    }

    func onClose() {
        if let placement, placement.owner != .serviceThread, let agent = placement.agent {
            handOut(agent, placement, reason: "the consensus thread is stopping")
        }
        service?.onClose()
        consensus?.onClose()
        consensus = nil
        countersFile = nil
        errorLogFile = nil
    }
}
