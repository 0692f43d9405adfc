import KeelCore
import KeelIO
import KeelRuntime
import KeelService

/// The consensus agent's thread body: builds the io_uring storage, transport and the
/// `ConsensusAgent` on its own thread (a ring belongs to the thread that first uses it), reports
/// the start to `ClusterNode`, then runs the agent — and, in shared-thread mode, the service agent
/// on the same thread.
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

    init(
        configuration: ClusterConfiguration, directory: String, ring: Ring, shared: SharedNodeState, egress: EgressQueue,
        startup: NodeStartup, sharedService: Service?, authenticator: any Authenticator,
        snapshots: ThreadHandoff<NodeSnapshots<IOUringStorage>>
    ) {
        self.snapshots = snapshots
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
        var work = try consensus!.doWork(nowNanos: nowNanos)
        if let service {
            work += try service.doWork(nowNanos: nowNanos)
            work += try consensus!.doWork(nowNanos: nowNanos)
        }
        return work
    }

    func onClose() {
        service?.onClose()
        consensus?.onClose()
        consensus = nil
        countersFile = nil
        errorLogFile = nil
    }
}
