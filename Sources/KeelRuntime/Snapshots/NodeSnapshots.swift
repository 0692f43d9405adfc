import KeelArchive
import KeelCore
import KeelService

/// What the service agent needs of its node's snapshot archive: taking a snapshot when it applies a
/// marker, and the service's reader when it restarts from one. (A protocol so the agent stays
/// generic over the service alone; called once per snapshot, never on the per-message path.)
public protocol SnapshotKeeping: AnyObject {
    /// Writes a snapshot of the state at `point` (the consensus section from `timers` and
    /// `sessions`, then the service's through `writeService`) atomically into the archive.
    func takeSnapshot(
        at point: SnapshotPoint, timers: ReplicatedTimers, sessions: SessionTable, serviceVersion: UInt32,
        writeService: (any SnapshotWriter) throws -> Void
    ) throws -> SnapshotTaken
    /// The position of the newest snapshot in the archive (markers at or below it are not taken again).
    var newestPosition: LogPosition? { get }
    /// The position of the oldest snapshot kept, once the archive keeps as many as configured (nil
    /// before): the log before it is no longer needed to restart (compaction, issue 10).
    var compactionBound: LogPosition? { get }
    /// The recovered snapshot's service-state reader (once; nil on a fresh start).
    func takeServiceReader() -> (any SnapshotReader)?
    /// "snapshot 3 (file)" for messages about the recovered snapshot.
    var recoveredName: String? { get }
    /// Closes the recovered snapshot's file (the service has read it).
    func finishRecovery()
    /// The newest snapshot in the archive, if any.
    var newestEntry: SnapshotEntry? { get }
    /// Adopts a snapshot received from the leader (`SnapshotReceiving.finish()`'s file) into the
    /// archive and opens it as `recover` does: returns its consensus state and entry, keeps its
    /// service section for `takeServiceReader()`. Throws (the archive unchanged) when it fails.
    func installReceived(fileName: String, offer: SnapshotOffer, responseWindow: ResponseWindowLimits) throws -> (ConsensusSnapshotState, SnapshotEntry)
    /// Removes a received snapshot's file that is not installed after all.
    func discardReceived(fileName: String)
}

/// Where in the log a snapshot is taken: the end of the marker entry, its term and cluster time.
public struct SnapshotPoint: Sendable, Equatable {
    public var position: LogPosition
    public var term: Term
    public var timestamp: ClusterTime
    /// The cluster is suspended at that position.
    public var suspended: Bool

    public init(position: LogPosition, term: Term, timestamp: ClusterTime, suspended: Bool = false) {
        self.position = position
        self.term = term
        self.timestamp = timestamp
        self.suspended = suspended
    }
}

/// A snapshot that was written: its id, position and size.
public struct SnapshotTaken: Sendable, Equatable, CustomStringConvertible {
    public var id: Int64
    public var position: LogPosition
    public var lengthBytes: Int64
    public var fileName: String

    public var description: String { "snapshot \(id) at position \(position.rawValue) (\(lengthBytes) bytes, \(fileName))" }
}

/// A node's snapshots (DESIGN.md decision 11) over its `SnapshotArchive`: recovery at start (the
/// newest snapshot that verifies and that the local log can continue from; its consensus state
/// decoded for both agents, its service section kept open for `onStart`) and taking snapshots when
/// the service agent applies a marker. Used by one thread at a time: the consensus thread while it
/// starts (`recover`), then the service agent's.
public final class NodeSnapshots<S: Storage>: SnapshotKeeping {
    public let archive: SnapshotArchive<S>
    public let clusterID: UInt64
    public let memberID: MemberID
    public let members: [MemberID]
    /// Snapshots kept in the archive (older ones are removed after each new one).
    public let keepNewest: Int
    /// Human-readable events (snapshots taken, rejected files, archive repairs).
    public var eventHandler: ((String) -> Void)?
    private var load: SnapshotLoad<S>?
    private var serviceReader: (any SnapshotReader)?
    /// The snapshot the node restarted from, if any.
    public private(set) var recovered: SnapshotEntry?

    /// Opens the archive (reconciling it: see `SnapshotArchive`) in `storage`'s directory.
    public init(
        storage: S, clusterID: UInt64, memberID: MemberID, members: [MemberID], keepNewest: Int = 3,
        configuration: ArchiveConfiguration = ArchiveConfiguration()
    ) throws(ArchiveError) {
        archive = try SnapshotArchive(storage: storage, configuration: configuration)
        self.clusterID = clusterID
        self.memberID = memberID
        self.members = members
        self.keepNewest = max(1, keepNewest)
    }

    /// Repairs opening made (damaged catalog slot, removed or adopted files), for the node's log.
    public var repairs: [String] { archive.repairs }

    public var newestPosition: LogPosition? { archive.snapshots().last?.position }

    public var compactionBound: LogPosition? {
        let kept = archive.snapshots()
        return kept.count >= keepNewest ? kept.first?.position : nil
    }

    public var recoveredName: String? { recovered.map { "snapshot \($0.id) (\(archive.storage.location)/\($0.fileName))" } }

    /// Finds the newest snapshot that verifies at or below `logEnd` (the local log must hold every
    /// entry after it to replay) and decodes its consensus state; keeps its service section for
    /// `takeServiceReader()`. Each newer snapshot that failed verification is reported (file, offset,
    /// reason) through `eventHandler` and in `rejected`, and set aside (out of the catalog, its file
    /// renamed `.rejected`) so that retention keeps `keepNewest` snapshots that load. Counts go to
    /// `shared` (loaded, rejected, position). Throws when a verified snapshot's consensus state
    /// cannot be read or belongs to another cluster, and when the log was compacted (`logStart` > 0)
    /// and no snapshot at or after its start verifies: the entries before the start are gone, so
    /// restarting from an older snapshot or none would serve wrong state.
    public func recover(logStart: LogPosition = .zero, logEnd: LogPosition, responseWindow: ResponseWindowLimits, shared: SharedNodeState? = nil) throws -> ConsensusSnapshotState? {
        for repair in archive.repairs { eventHandler?("snapshot archive: \(repair)") }
        let skipped = archive.snapshots().filter { $0.position > logEnd }
        if let newest = skipped.last {
            eventHandler?("snapshot \(newest.id) at position \(newest.position.rawValue) is past the local log's end \(logEnd.rawValue) (lost in a power loss?): an older one is used")
        }
        let repairsBefore = archive.repairs.count
        let setAsideBefore = archive.setAsideSnapshots.count
        let found = archive.newestValidSnapshot(atOrBelow: logEnd, settingAside: true)
        for problem in archive.rejectedSnapshots { eventHandler?("snapshot rejected: \(problem); using an older one") }
        for setAside in archive.setAsideSnapshots.dropFirst(setAsideBefore) { eventHandler?("\(setAside) (out of the catalog; kept for inspection)") }
        for repair in archive.repairs.dropFirst(repairsBefore) { eventHandler?("snapshot archive: \(repair)") }
        shared?.snapshotsRejected.add(Int64(archive.rejectedSnapshots.count), ordering: .relaxed)
        if logStart > .zero, found.map({ $0.entry.position < logStart }) ?? true {
            found?.close()
            throw ConfigurationError(unusableAfterCompaction(logStart: logStart, logEnd: logEnd, olderValid: found?.entry))
        }
        guard let found else { return nil }
        let state = try open(found, responseWindow: responseWindow)
        shared?.snapshotsLoaded.add(1, ordering: .relaxed)
        shared?.lastSnapshotPosition.store(state.position.rawValue, ordering: .relaxed)
        eventHandler?("restarting from snapshot \(found.entry.id) at position \(state.position.rawValue) (term \(state.term.rawValue), \(found.entry.lengthBytes) bytes)")
        return state
    }

    /// Decodes a verified snapshot's consensus state and keeps its service section for `takeServiceReader()`.
    private func open(_ found: SnapshotLoad<S>, responseWindow: ResponseWindowLimits) throws -> ConsensusSnapshotState {
        let name = "\(archive.storage.location)/\(found.entry.fileName)"
        guard let consensusReader = try found.reader(for: .consensusState) else {
            throw ConfigurationError("snapshot \(name) holds no consensus state")
        }
        let state: ConsensusSnapshotState
        do { state = try ConsensusSnapshotState.read(from: consensusReader, responseWindow: responseWindow) } catch {
            throw ConfigurationError("snapshot \(name): \(error)")
        }
        guard state.clusterID == clusterID, state.position == found.entry.position else {
            throw ConfigurationError(
                "snapshot \(name) is of cluster \(state.clusterID) at \(state.position.rawValue); this node is of cluster \(clusterID) and the catalog says \(found.entry.position.rawValue)")
        }
        load = found
        serviceReader = try found.reader(for: .serviceState)
        recovered = found.entry
        return state
    }

    /// Why no snapshot can be restarted from after compaction: each snapshot that failed
    /// verification (file, offset, reason; now set aside) and each the catalog still lists.
    private func unusableAfterCompaction(logStart: LogPosition, logEnd: LogPosition, olderValid: SnapshotEntry?) -> String {
        var reasons = archive.rejectedSnapshots.map { "\($0)" }
        for entry in archive.snapshots().reversed() {
            let file = "\(archive.storage.location)/\(entry.fileName)"
            if entry.position > logEnd {
                reasons.append("\(file) at \(entry.position.rawValue) is past the log's end \(logEnd.rawValue)")
            } else if entry.position < logStart {
                reasons.append("\(file) at \(entry.position.rawValue)\(entry == olderValid ? " verifies but" : "") is before the log start")
            }
        }
        let detail = reasons.isEmpty ? "the archive holds no snapshot" : reasons.joined(separator: "; ")
        return "the log was compacted to start at position \(logStart.rawValue), so this member can restart only from a snapshot at or after it, and none is usable: \(detail). Serving from an older state would be wrong: restore a good snapshot into \(archive.storage.location), or empty this member's directory and start it with --rejoin so that it rejoins from a snapshot of the leader"
    }

    public var newestEntry: SnapshotEntry? { archive.snapshots().last }

    /// The archive's newest snapshot when it lies past the local log's end and verifies: one
    /// installed from a leader before the log was reset to it (a crash or power loss mid-install),
    /// or one this member wrote whose log tail a power loss took (replicated mode). A snapshot holds
    /// only committed state, so the node goes on from it (`ConsensusAgent.resumeInstall`) rather
    /// than from an older state — which compaction may have made impossible anyway.
    public func newestPastLogEnd(_ logEnd: LogPosition) -> SnapshotEntry? {
        guard let newest = archive.snapshots().last, newest.position > logEnd, archive.verify(newest) == nil else { return nil }
        return newest
    }

    public func discardReceived(fileName: String) {
        try? archive.storage.deleteFile(fileName)
    }

    public func installReceived(fileName: String, offer: SnapshotOffer, responseWindow: ResponseWindowLimits) throws -> (ConsensusSnapshotState, SnapshotEntry) {
        finishRecovery()
        let entry = try archive.installReceived(fileName)
        guard let found = archive.newestValidSnapshot(), found.entry == entry else {
            throw ConfigurationError("\(entry), installed from the leader, is not the newest valid snapshot in \(archive.storage.location)")
        }
        let state: ConsensusSnapshotState
        do { state = try open(found, responseWindow: responseWindow) } catch {
            found.close()
            throw error
        }
        guard state.position == offer.position, state.term == offer.term else {
            finishRecovery()
            throw ConfigurationError("\(entry) holds the state at \(state.position.rawValue) in term \(state.term.rawValue); the leader offered \(offer)")
        }
        do { try archive.removeSnapshots(keepingNewest: keepNewest) } catch {
            eventHandler?("removing old snapshots failed (kept; retried after the next one): \(error)")
        }
        eventHandler?("installed \(entry) received from the leader (\(offer))")
        return (state, entry)
    }

    /// Newer snapshots the last `recover` rejected.
    public var rejected: [SnapshotProblem] { archive.rejectedSnapshots }

    public func takeServiceReader() -> (any SnapshotReader)? {
        defer { serviceReader = nil }
        return serviceReader
    }

    /// Closes the recovered snapshot's file (after the service has read it).
    public func finishRecovery() {
        serviceReader = nil
        load?.close()
        load = nil
    }

    public func takeSnapshot(
        at point: SnapshotPoint, timers: ReplicatedTimers, sessions: SessionTable, serviceVersion: UInt32,
        writeService: (any SnapshotWriter) throws -> Void
    ) throws -> SnapshotTaken {
        finishRecovery()
        let header = SnapshotHeader(
            serviceVersion: serviceVersion, clusterID: clusterID, term: point.term, position: point.position, timestamp: point.timestamp,
            memberID: memberID)
        let writing = try archive.beginSnapshot(header)
        do {
            try writing.beginSection(.consensusState)
            let state = ConsensusSnapshotState(
                position: point.position, term: point.term, timestamp: point.timestamp, clusterID: clusterID, members: members, timers: timers,
                sessions: sessions, suspended: point.suspended)
            try state.write(to: writing)
            try writing.beginSection(.serviceState)
            try writeService(writing)
        } catch {
            writing.abandon()
            throw error
        }
        let entry = try writing.finish()
        do { try archive.removeSnapshots(keepingNewest: keepNewest) } catch {
            eventHandler?("removing old snapshots failed (kept; retried after the next one): \(error)")
        }
        return SnapshotTaken(id: entry.id, position: entry.position, lengthBytes: entry.lengthBytes, fileName: entry.fileName)
    }
}

extension SnapshotSectionReader: SnapshotSectionLength {
    public var sectionByteCount: Int64 { byteCount }
}
