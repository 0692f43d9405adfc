import KeelCore
import KeelIO
import KeelRuntime
import KeelService
import Synchronization

/// Runs one member of a cluster for a configuration and a service, on io_uring: the library API
/// behind `keel node`, and what a user's own `main` calls.
///
/// ```swift
/// let node = ClusterNode(configuration: configuration, directory: "/var/lib/keel/0", service: MyService())
/// try node.runUntilTerminated()   // SIGTERM / SIGINT → clean shutdown
/// ```
public final class ClusterNode<Service: ClusteredService & SendableMetatype> {
    /// How the agents get threads (DESIGN.md decision 8).
    public enum Threading: Sendable, Equatable {
        /// The default: a thread each, and the service agent runs on the consensus thread while the
        /// load is light (docs/architecture.md, "Where the service agent runs").
        case adaptive(AdaptiveThreading)
        /// Consensus and service agents on a thread each, always.
        case separate
        /// Both agents on one thread, always.
        case shared
    }

    public let configuration: ClusterConfiguration
    public let directoryPath: String
    public let threading: Threading
    /// Positions and role, readable from any thread.
    public let shared: SharedNodeState
    private var service: Service?
    private var directory: NodeDirectory?
    private var consensusRunner: AgentRunner?
    private var serviceRunner: AgentRunner?
    private let consensusRing: Ring
    private let serviceRing: Ring
    private var startupSignal = false
    private let placement: ServicePlacement<Service>?
    /// Who may open sessions and administer (default: everyone).
    public let authenticator: any Authenticator

    /// A node (not started). Throws when io_uring rings cannot be created (see `start` for the probe).
    public init(
        configuration: ClusterConfiguration, directory: String, service: Service, threading: Threading = .adaptive(AdaptiveThreading()),
        authenticator: any Authenticator = AcceptAllAuthenticator()
    ) throws {
        self.authenticator = authenticator
        do { try IOUringProbe.check() } catch { throw ConfigurationError("io_uring unavailable: \(error.message)") }
        self.configuration = configuration
        self.directoryPath = directory
        self.threading = threading
        self.service = service
        consensusRing = try Ring()
        serviceRing = try Ring(configuration: Ring.Configuration(submissionQueueEntries: 8))
        let consensusWaker = consensusRing.waker
        let serviceWaker = serviceRing.waker
        switch threading {
        case .shared:
            placement = nil
            shared = SharedNodeState(wakeService: {}, wakeConsensus: {})
        case .separate, .adaptive:
            let rules = if case .adaptive(let rules) = threading { rules } else { AdaptiveThreading() }
            let placement = ServicePlacement<Service>(rules: rules, serviceWaker: serviceWaker, consensusWaker: consensusWaker)
            self.placement = placement
            // Only the consensus thread wakes the service agent, and only the service agent the
            // consensus thread: while both run on the consensus thread there is no one to wake.
            // Each sends its wake-up through its own ring (IORING_OP_MSG_RING, with its next submit).
            let toService = RingWakeSender(ring: consensusRing, target: serviceRing.doorbell)
            let toConsensus = RingWakeSender(ring: serviceRing, target: consensusRing.doorbell)
            shared = SharedNodeState(
                wakeService: { if placement.runsOnServiceThread { toService.wake() } },
                wakeConsensus: { if placement.runsOnServiceThread { toConsensus.wake() } })
        }
    }

    /// How often adaptive threading moved the service agent to its own thread and back to the
    /// consensus thread (0 and 0 under the other threadings).
    public var serviceAgentMoves: (toOwnThread: Int, toConsensusThread: Int) {
        (placement?.movesOut.load(ordering: .relaxed) ?? 0, placement?.movesIn.load(ordering: .relaxed) ?? 0)
    }

    /// Locks and checks the directory, then starts the agents; returns once the node listens.
    /// Throws a `ConfigurationError` with one line saying what is wrong.
    public func start() throws {
        directory = try NodeDirectory(path: directoryPath, configuration: configuration)
        guard let service = self.service.take() else { preconditionFailure("a node starts once") }
        let egress = EgressQueue(capacityBytes: 16 << 20)
        let startup = NodeStartup()
        let snapshots = try Self.openSnapshots(configuration: configuration, directory: directoryPath, ring: serviceRing)
        let host = ConsensusHost(
            configuration: configuration, directory: directoryPath, ring: consensusRing, shared: shared, egress: egress, startup: startup,
            sharedService: threading == .shared ? service : nil, authenticator: authenticator, snapshots: snapshots, placement: placement)
        let idle = KernelWaitIdleStrategy(ring: consensusRing, timeoutNanos: 1_000_000)
        // Safe because: the host, its idle strategy and the ring they share move to the new thread
        // together and this thread never touches them again (it keeps only the Sendable waker).
        nonisolated(unsafe) let consensusDuty = AgentDuty(agent: host, idleStrategy: idle)
        consensusRunner = try AgentRunner(consensusDuty, waker: consensusRing.waker) { failure in
            startup.fail(failure.description)
        }
        let (reader, restored) = try startup.wait()
        startupSignal = startup.signalDuringStartup.load(ordering: .acquiring)
        if let placement {
            // Safe because: the consensus thread finished with `snapshots` (recovery) before it
            // signalled the start; from here on only the service agent uses it, on whichever
            // thread `placement` gives it to (its calls on the archive's storage are synchronous
            // ones, which do not use the ring).
            let agent = ServiceAgent(
                service: service, memberID: configuration.selfID, reader: reader, shared: shared, egress: egress,
                responseWindow: configuration.responseWindow, snapshots: snapshots.value, restoring: restored)
            let id = configuration.selfID.rawValue
            agent.eventHandler = { printToStandardError("keel node \(id): \($0)") }
            agent.progressClock = { SystemClock().monotonicNanos() }
            placement.agent = agent
            let host = ServiceHost(placement: placement, shared: shared, adaptive: threading != .separate, ring: serviceRing)
            host.eventHandler = { printToStandardError("keel node \(id): \($0)") }
            let serviceIdle = ServiceIdleStrategy(ring: serviceRing, placement: placement)
            // Safe because: the host, its idle strategy and the service ring move to their thread
            // for good; the agent itself is shared with the consensus thread only through `placement`.
            nonisolated(unsafe) let serviceDuty = AgentDuty(agent: host, idleStrategy: serviceIdle)
            serviceRunner = try AgentRunner(serviceDuty, waker: serviceRing.waker)
        }
    }

    /// A failure that stopped an agent, if any.
    public var failure: String? {
        consensusRunner?.failure?.description ?? serviceRunner?.failure?.description
    }

    /// Stops the agents (work in flight is finished: the log is synced and closed) and unlocks the directory.
    public func stop() throws {
        var firstError: (any Error)?
        do { try serviceRunner?.close() } catch { firstError = error }
        do { try consensusRunner?.close() } catch { firstError = firstError ?? error }
        serviceRunner = nil
        consensusRunner = nil
        directory?.release()
        directory = nil
        if let firstError { throw firstError }
    }

    /// Blocks SIGTERM and SIGINT, starts the node, waits for one of them, an orderly cluster shutdown
    /// (`keel tool shutdown`) or an agent failure, then stops cleanly. Throws on a failure.
    public func runUntilTerminated(onEvent: @escaping @Sendable (String) -> Void = { printToStandardError($0) }) throws {
        TerminationSignals.block()
        try start()
        while !startupSignal {
            if let signal = TerminationSignals.wait(timeoutNanos: 200_000_000) {
                onEvent("received \(signal): shutting down")
                break
            }
            if shared.exitRequested.load(ordering: .acquiring) {
                onEvent("cluster shutdown: final snapshot at \(shared.shutdownPosition.load(ordering: .acquiring)) written; shutting down")
                break
            }
            if let failure {
                try? stop()
                throw ConfigurationError(failure)
            }
        }
        try stop()
        onEvent("stopped cleanly")
    }
}

extension ClusterNode {
    /// Opens the node's snapshot archive (`<directory>/archive`) on the service agent's ring, which
    /// only its synchronous calls use.
    static func openSnapshots(configuration: ClusterConfiguration, directory: String, ring: Ring) throws -> ThreadHandoff<NodeSnapshots<IOUringStorage>> {
        let id = configuration.selfID.rawValue
        do {
            let storage = try IOUringStorage(directory: directory + "/archive", ring: ring)
            let snapshots = try NodeSnapshots(
                storage: storage, clusterID: configuration.clusterID, memberID: configuration.selfID, members: configuration.members.map(\.id),
                keepNewest: configuration.snapshotsKept)
            snapshots.eventHandler = { printToStandardError("keel node \(id): \($0)") }
            return ThreadHandoff(snapshots)
        } catch {
            throw ConfigurationError("cannot open the snapshot archive in \(directory)/archive: \(error)")
        }
    }
}

/// An object used by one thread at a time, handed from one to the next through a synchronising
/// step (a thread start, a mutex), never used by two at once.
final class ThreadHandoff<Value>: @unchecked Sendable {
    // Safe because: see the type's contract; every hand-over in KeelNode goes through a thread
    // start or `NodeStartup`'s mutex, which order the previous owner's accesses before the next's.
    let value: Value
    init(_ value: Value) { self.value = value }
}

/// The handshake between `ClusterNode.start` and the consensus thread's `onStart`.
final class NodeStartup: Sendable {
    private let state = Mutex<(reader: CommittedLogReader?, restored: ConsensusSnapshotState?, error: String?)>((nil, nil, nil))
    /// A termination signal arrived while starting (it is consumed by the wait).
    let signalDuringStartup = Atomic<Bool>(false)

    func succeed(_ reader: CommittedLogReader, restored: ConsensusSnapshotState?) {
        state.withLock {
            $0.reader = reader
            $0.restored = restored
        }
    }
    func fail(_ message: String) { state.withLock { if $0.error == nil { $0.error = message } } }

    func wait() throws -> (CommittedLogReader, ConsensusSnapshotState?) {
        while true {
            let (reader, restored, error) = state.withLock { ($0.reader, $0.restored, $0.error) }
            if let error { throw ConfigurationError(error) }
            if let reader { return (reader, restored) }
            if TerminationSignals.wait(timeoutNanos: 1_000_000) != nil { signalDuringStartup.store(true, ordering: .releasing) }
        }
    }
}
