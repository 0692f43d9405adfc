import KeelArchive
import KeelCore
import Synchronization

/// The hand-over of a snapshot received from the leader between the consensus agent (which
/// received and checked the file) and the service agent (which owns the archive and the service):
///
/// 1. consensus: `post` — the complete, synced file's name and what the leader offered;
/// 2. service: `takeRequest`, adopt the file into the archive (renamed and listed, like a snapshot
///    it wrote), drop the service's state and start a fresh instance from the snapshot, then
///    `complete` with the snapshot's consensus state (or the failure) and wait;
/// 3. consensus: `takeOutcome`, reset the log to start at the snapshot's position, restore its
///    sessions and timers, tell the core, then `release` the service agent, which applies on from
///    there.
///
/// A power loss before step 2's catalog update leaves the old state (the `.part` file is removed at
/// the next start); after it, the newest snapshot is the installed one.
public final class SnapshotInstallHandoff: Sendable {
    public struct Request: Sendable, Equatable {
        public var fileName: String
        public var offer: SnapshotOffer
    }

    public enum Outcome: Sendable, Equatable {
        case installed(ConsensusSnapshotState, SnapshotEntry)
        /// The service had applied up to the snapshot's position or past it meanwhile (the log
        /// held those entries after all): the file was discarded, nothing changed.
        case notNeeded(applied: LogPosition)
        case failed(String)
    }

    private let state = Mutex<(request: Request?, outcome: Outcome?)>((nil, nil))
    /// A request waits for the service agent (its cheap per-cycle check).
    public let requestPending = Atomic<Bool>(false)
    /// The service agent installed and waits for the consensus agent's log reset before applying.
    public let awaitingLog = Atomic<Bool>(false)

    public init() {}

    /// Consensus: asks the service agent to install `request`.
    public func post(_ request: Request) {
        state.withLock {
            $0.request = request
            $0.outcome = nil
        }
        requestPending.store(true, ordering: .releasing)
    }

    /// Service: the waiting request, once.
    public func takeRequest() -> Request? {
        guard requestPending.load(ordering: .acquiring) else { return nil }
        return state.withLock { current in
            defer { current.request = nil }
            return current.request
        }
    }

    /// Service: the install's outcome; on success it waits (`awaitingLog`) until `release`.
    public func complete(_ outcome: Outcome) {
        if case .installed = outcome { awaitingLog.store(true, ordering: .releasing) }
        state.withLock { $0.outcome = outcome }
        requestPending.store(false, ordering: .releasing)
    }

    /// Consensus: the outcome, once.
    public func takeOutcome() -> Outcome? {
        state.withLock { current in
            defer { current.outcome = nil }
            return current.outcome
        }
    }

    /// Consensus: the log and the runtime state are at the snapshot; the service agent may apply on.
    public func release() { awaitingLog.store(false, ordering: .releasing) }
}
