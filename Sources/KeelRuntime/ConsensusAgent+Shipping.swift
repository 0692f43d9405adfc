import KeelArchive
import KeelCore
import KeelRaft
import KeelWire

/// How snapshot transfers share the member connections with replication.
struct SnapshotShippingLimits {
    /// Snapshot bytes per chunk frame.
    var chunkBytes = 256 << 10
    /// Bytes sent beyond the follower's last ack, per transfer.
    var inFlightBytes = 8 << 20
    /// Snapshot bytes all transfers together may queue in one duty cycle, so a cycle's other work
    /// (AppendEntries to the other followers, client ingress) is never held up behind a snapshot.
    var cycleBudgetBytes = 2 << 20
    /// Room left in a connection's send queue for the Raft messages to the same follower.
    var sendQueueReserveBytes = 2 << 20
    /// The receiver acks after this many bytes (and after the last one).
    var ackEveryBytes = 2 << 20
    /// An offer not answered within this time is sent again.
    var offerRetryNanos: Int64 = 1_000_000_000
}

/// Leader: one follower's transfer.
final class OutgoingSnapshot<S: Storage> {
    let member: MemberID
    let source: SnapshotFileSource<S>
    let offer: SnapshotOffer
    let term: Term
    /// The connection the offer went on; another one (a reconnect) means offering again.
    var connectionSerial: UInt64?
    var offeredAtNanos: Int64 = .min
    /// Where the next chunk starts; nil until the follower's answer to the offer says.
    var nextOffset: Int64?
    var ackedOffset: Int64 = 0
    /// The follower has every byte and is installing.
    var received = false

    init(member: MemberID, source: SnapshotFileSource<S>, term: Term) {
        self.member = member
        self.source = source
        self.offer = SnapshotOffer(source.entry)
        self.term = term
    }
}

/// Follower: the transfer being received (at most one).
final class IncomingSnapshot<S: Storage> {
    let leader: MemberID
    let term: Term
    let receiving: SnapshotReceiving<S>
    var unackedBytes = 0
    /// Complete and handed to the service agent to install.
    var installing = false

    init(leader: MemberID, term: Term, receiving: SnapshotReceiving<S>) {
        self.leader = leader
        self.term = term
        self.receiving = receiving
    }
}

/// The consensus agent's snapshot shipping state (DESIGN.md decision 11; docs/wire-protocol.md,
/// "Snapshot transfer"). Transfers are kept in an array, walked in order (deterministic).
final class SnapshotShipping<S: Storage> {
    /// A storage over this node's archive directory, on the consensus agent's thread (nil: the node
    /// has no archive, so it neither sends nor receives snapshots).
    var storage: S?
    var limits = SnapshotShippingLimits()
    var outgoing: [OutgoingSnapshot<S>] = []
    var incoming: IncomingSnapshot<S>?
    /// One chunk frame, read into in place.
    private(set) var frameBuffer: UnsafeMutableRawBufferPointer?
    /// Snapshot bytes this leader queued, and snapshots this member installed (for tests and benchmarks).
    var bytesSent: Int64 = 0
    var installed = 0

    func buffer() -> UnsafeMutableRawBufferPointer {
        if let frameBuffer { return frameBuffer }
        let made = UnsafeMutableRawBufferPointer.allocate(byteCount: SnapshotChunkFrame.fixedBytes + limits.chunkBytes, alignment: 64)
        frameBuffer = made
        return made
    }

    deinit { frameBuffer?.deallocate() }
}

// Snapshot shipping, the consensus side: the leader streams its newest snapshot to a follower the
// core put in snapshot state; the follower receives it into its archive directory, has the service
// agent install it, resets its log to the snapshot's position and tells the core.
extension ConsensusAgent {
    /// Lets this member send and receive snapshots through `archiveStorage`, a storage over its
    /// archive directory for this agent's thread (call before `onStart`).
    public func enableSnapshotShipping(archiveStorage: S) {
        shipping.storage = archiveStorage
    }

    /// Snapshot bytes this member has queued to followers.
    public var snapshotBytesSent: Int64 { shipping.bytesSent }
    /// Snapshots this member installed from a leader.
    public var snapshotsInstalled: Int { shipping.installed }

    // MARK: Leader

    /// The core's `.sendSnapshot`: start (or keep) a transfer of the newest snapshot to `member`.
    func startSnapshotTransfer(to member: MemberID) {
        guard let storage = shipping.storage else {
            event("member \(member.rawValue) needs a snapshot, and this member has no archive to send one from")
            return
        }
        guard let entry = shared.newestSnapshot.withLock({ $0 }) else {
            event("member \(member.rawValue) needs a snapshot; none is taken yet")
            return
        }
        if let existing = shipping.outgoing.first(where: { $0.member == member }) {
            if existing.offer.sourceID == entry.id && existing.term == core.term { return }
            dropOutgoing(member, abort: .sourceUnavailable)
        }
        let source: SnapshotFileSource<S>
        do { source = try SnapshotFileSource(storage: storage, entry: entry) } catch {
            event("cannot send \(entry) to member \(member.rawValue): \(error)")
            return
        }
        shipping.outgoing.append(OutgoingSnapshot(member: member, source: source, term: core.term))
        event("sending snapshot \(entry.id) at position \(entry.position.rawValue) (\(entry.lengthBytes) bytes) to member \(member.rawValue)")
        _ = pumpSnapshotTransfers()
    }

    /// Each duty cycle: (re-)offer where needed and stream chunks within the limits.
    func pumpSnapshotTransfers() -> Int {
        guard !shipping.outgoing.isEmpty else { return 0 }
        guard core.role == .leader else {
            for transfer in shipping.outgoing { dropOutgoing(transfer.member, abort: .leadershipLost) }
            return 1
        }
        var budget = shipping.limits.cycleBudgetBytes
        var work = 0
        for transfer in shipping.outgoing {
            guard let connection = peers[transfer.member], connection.isEstablished, !connection.isClosed else {
                transfer.connectionSerial = nil
                transfer.nextOffset = nil
                continue
            }
            if transfer.connectionSerial != connection.serial
                || (transfer.nextOffset == nil && nowNanos &- transfer.offeredAtNanos >= shipping.limits.offerRetryNanos)
            {
                sendOffer(transfer, on: connection)
                work += 1
                continue
            }
            guard !transfer.received, var offset = transfer.nextOffset else { continue }
            while offset < transfer.offer.totalBytes && budget > 0 && offset - transfer.ackedOffset < Int64(shipping.limits.inFlightBytes) {
                let frame = shipping.buffer()
                let want = Int(min(Int64(shipping.limits.chunkBytes), transfer.offer.totalBytes - offset))
                guard connection.sendQueue.freeBytes >= SnapshotChunkFrame.fixedBytes + want + shipping.limits.sendQueueReserveBytes else { break }
                let chunk = UnsafeMutableRawBufferPointer(rebasing: frame[SnapshotChunkFrame.fixedBytes..<(SnapshotChunkFrame.fixedBytes + want)])
                let count: Int
                do { count = try transfer.source.read(from: offset, into: chunk) } catch {
                    event("reading \(transfer.source.entry) for member \(transfer.member.rawValue) failed: \(error)")
                    dropOutgoing(transfer.member, abort: .sourceUnavailable)
                    return work + 1
                }
                let length = SnapshotChunkFrame.encodeInPlace(
                    into: frame, term: transfer.term, snapshotID: transfer.offer.sourceID, snapshotPosition: transfer.offer.position,
                    snapshotTerm: transfer.offer.term, totalBytes: transfer.offer.totalBytes, offset: offset, chunkLength: count)
                guard enqueue(UnsafeRawBufferPointer(rebasing: frame[0..<length]), on: connection) else { break }
                offset += Int64(count)
                budget -= count
                shipping.bytesSent += Int64(count)
                work += 1
            }
            transfer.nextOffset = offset
        }
        return work
    }

    private func sendOffer(_ transfer: OutgoingSnapshot<S>, on connection: PeerConnection) {
        transfer.connectionSerial = connection.serial
        transfer.offeredAtNanos = nowNanos
        transfer.nextOffset = nil
        transfer.received = false
        let length = SnapshotOfferFrame.encode(
            into: scratch, term: transfer.term, snapshotID: transfer.offer.sourceID, snapshotPosition: transfer.offer.position,
            snapshotTerm: transfer.offer.term, totalBytes: transfer.offer.totalBytes, wholeCRC: transfer.offer.wholeCRC)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }

    /// Ends the transfer to `member`, telling it why when connected.
    func dropOutgoing(_ member: MemberID, abort reason: SnapshotAbortReason?) {
        guard let index = shipping.outgoing.firstIndex(where: { $0.member == member }) else { return }
        let transfer = shipping.outgoing.remove(at: index)
        transfer.source.close()
        if let reason, let connection = peers[member], connection.isEstablished {
            let length = SnapshotAbortFrame.encode(into: scratch, term: transfer.term, snapshotID: transfer.offer.sourceID, reason: reason)
            enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
        }
    }

    private func snapshotAcked(_ frame: SnapshotAckFrame, from member: MemberID, on connection: PeerConnection) {
        guard let transfer = shipping.outgoing.first(where: { $0.member == member }),
              transfer.offer.sourceID == frame.snapshotID, transfer.connectionSerial == connection.serial
        else { return }
        switch frame.status {
        case .receiving:
            guard frame.nextOffset <= transfer.offer.totalBytes else { return }
            if transfer.nextOffset == nil {
                transfer.nextOffset = frame.nextOffset
                transfer.ackedOffset = frame.nextOffset
                if frame.nextOffset > 0 { event("member \(member.rawValue) resumes snapshot \(frame.snapshotID) at byte \(frame.nextOffset)") }
            } else {
                transfer.ackedOffset = max(transfer.ackedOffset, frame.nextOffset)
            }
        case .received:
            transfer.received = true
            transfer.ackedOffset = transfer.offer.totalBytes
        case .installed:
            event("member \(member.rawValue) installed snapshot \(frame.snapshotID) at position \(transfer.offer.position.rawValue)")
            dropOutgoing(member, abort: nil)
        }
    }

    // MARK: Member frames

    /// Handles the snapshot-transfer frames on an established member connection; false for any other frame.
    func handleSnapshotFrame(_ message: WireMessage, from member: MemberID, on connection: PeerConnection) throws -> Bool {
        switch message {
        case .snapshotOffer(let frame): try snapshotOffered(frame, from: member, on: connection)
        case .snapshotChunk(let frame): try snapshotChunk(frame, from: member, on: connection)
        case .snapshotAck(let frame): snapshotAcked(frame, from: member, on: connection)
        case .snapshotAbort(let frame):
            if let transfer = shipping.outgoing.first(where: { $0.member == member }), transfer.offer.sourceID == frame.snapshotID {
                event("member \(member.rawValue) gave up receiving snapshot \(frame.snapshotID): \(frame.reason)")
                dropOutgoing(member, abort: nil)
            }
            if let incoming = shipping.incoming, incoming.leader == member, !incoming.installing,
               incoming.receiving.offer.sourceID == frame.snapshotID
            {
                event("member \(member.rawValue) stopped sending snapshot \(frame.snapshotID): \(frame.reason)")
                dropIncoming()
            }
        default: return false
        }
        return true
    }

    // MARK: Follower

    private func sendSnapshotAck(_ snapshotID: Int64, nextOffset: Int64, status: SnapshotAckStatus, on connection: PeerConnection) {
        let length = SnapshotAckFrame.encode(into: scratch, term: core.term, snapshotID: snapshotID, nextOffset: nextOffset, status: status)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }

    private func refuseSnapshot(_ snapshotID: Int64, _ reason: SnapshotAbortReason, on connection: PeerConnection) {
        let length = SnapshotAbortFrame.encode(into: scratch, term: core.term, snapshotID: snapshotID, reason: reason)
        enqueue(UnsafeRawBufferPointer(rebasing: scratch[0..<length]), on: connection)
    }

    private func snapshotOffered(_ frame: SnapshotOfferFrame, from member: MemberID, on connection: PeerConnection) throws {
        let offer = SnapshotOffer(
            sourceID: frame.snapshotID, position: frame.snapshotPosition, term: frame.snapshotTerm, totalBytes: frame.totalBytes,
            wholeCRC: frame.wholeCRC)
        if let incoming = shipping.incoming, incoming.leader == member, incoming.receiving.offer == offer {
            // The same snapshot again (a new connection, or an unanswered offer): say where we are.
            if incoming.installing {
                sendSnapshotAck(offer.sourceID, nextOffset: offer.totalBytes, status: .received, on: connection)
            } else {
                incoming.unackedBytes = 0
                sendSnapshotAck(offer.sourceID, nextOffset: incoming.receiving.receivedBytes, status: .receiving, on: connection)
            }
            return
        }
        guard let storage = shipping.storage, frame.term == core.term, core.leaderID == member, core.shouldInstallSnapshot(position: offer.position),
              shipping.incoming?.installing != true
        else {
            refuseSnapshot(offer.sourceID, .notNeeded, on: connection)
            return
        }
        dropIncoming()
        do {
            let receiving = try SnapshotReceiving(storage: storage, offer: offer, clusterID: configuration.clusterID)
            shipping.incoming = IncomingSnapshot(leader: member, term: frame.term, receiving: receiving)
        } catch {
            reportError(.storage, "cannot receive \(offer) from member \(member.rawValue): \(error)")
            refuseSnapshot(offer.sourceID, .installFailed, on: connection)
            return
        }
        event("receiving \(offer) from member \(member.rawValue)")
        sendSnapshotAck(offer.sourceID, nextOffset: 0, status: .receiving, on: connection)
    }

    private func snapshotChunk(_ frame: SnapshotChunkFrame, from member: MemberID, on connection: PeerConnection) throws {
        guard let incoming = shipping.incoming, incoming.leader == member, !incoming.installing,
              incoming.receiving.offer.sourceID == frame.snapshotID, incoming.receiving.offer.totalBytes == frame.totalBytes,
              frame.offset == incoming.receiving.receivedBytes
        else { return }  // a chunk from before the last offer; the ack to that offer said where to resume
        let offer = incoming.receiving.offer
        do { try incoming.receiving.append(frame.chunk, at: frame.offset) } catch {
            reportError(.storage, "writing \(offer) from member \(member.rawValue) failed: \(error)")
            dropIncoming()
            refuseSnapshot(offer.sourceID, .installFailed, on: connection)
            return
        }
        incoming.unackedBytes += frame.chunk.count
        guard incoming.receiving.isComplete else {
            if incoming.unackedBytes >= shipping.limits.ackEveryBytes {
                incoming.unackedBytes = 0
                sendSnapshotAck(offer.sourceID, nextOffset: incoming.receiving.receivedBytes, status: .receiving, on: connection)
            }
            return
        }
        let name: String
        do { name = try incoming.receiving.finish() } catch {
            reportError(.storage, "\(offer) from member \(member.rawValue) failed verification: \(error)")
            shipping.incoming = nil
            refuseSnapshot(offer.sourceID, .verificationFailed, on: connection)
            return
        }
        guard core.shouldInstallSnapshot(position: offer.position) else {
            // The log caught up meanwhile (a leader change, appends from before the log start moved).
            event("\(offer) from member \(member.rawValue) is no longer needed (commit \(core.commitPosition.rawValue))")
            try? shipping.storage?.deleteFile(name)
            shipping.incoming = nil
            refuseSnapshot(offer.sourceID, .notNeeded, on: connection)
            return
        }
        incoming.installing = true
        shared.snapshotInstall.post(SnapshotInstallHandoff.Request(fileName: name, offer: offer))
        shared.wakeService()
        event("received \(offer) from member \(member.rawValue); installing")
        sendSnapshotAck(offer.sourceID, nextOffset: offer.totalBytes, status: .received, on: connection)
    }

    /// Drops a transfer being received (not one being installed: the service agent has its file).
    func dropIncoming() {
        guard let incoming = shipping.incoming, !incoming.installing else { return }
        incoming.receiving.abandon()
        shipping.incoming = nil
    }

    /// Each duty cycle: finishes an install once the service agent has done its part.
    func pollSnapshotInstall() throws -> Int {
        guard let incoming = shipping.incoming, incoming.installing, let outcome = shared.snapshotInstall.takeOutcome() else { return 0 }
        shipping.incoming = nil
        let offer = incoming.receiving.offer
        // What the service asked before it installed belongs to the old state: take it in first.
        _ = drainServiceRequests()
        switch outcome {
        case .notNeeded(let applied):
            event("\(offer) not installed: the service has applied up to \(applied.rawValue) meanwhile")
            if let connection = peers[incoming.leader], connection.isEstablished { refuseSnapshot(offer.sourceID, .notNeeded, on: connection) }
        case .failed(let reason):
            reportError(.storage, "installing \(offer) failed: \(reason)")
            if let connection = peers[incoming.leader], connection.isEstablished { refuseSnapshot(offer.sourceID, .installFailed, on: connection) }
        case .installed(let state, let entry):
            try finishInstall(state, entry: entry)
            if let connection = peers[incoming.leader], connection.isEstablished {
                sendSnapshotAck(offer.sourceID, nextOffset: offer.totalBytes, status: .installed, on: connection)
            }
        }
        return 1
    }

    /// The service runs from the snapshot at `state.position`: bring the log, the runtime state
    /// and the core there. The log is kept when it already holds the snapshot's last entry (the
    /// service replays on from there); otherwise it is reset to start, empty, at the position.
    private func finishInstall(_ state: ConsensusSnapshotState, entry: SnapshotEntry) throws {
        let position = state.position
        guard core.role != .leader else {
            throw ConfigurationError("member \(configuration.selfID.rawValue) became leader while installing \(entry); restart it")
        }
        let keepLog = position > log.startPosition && position <= log.appendedPosition && log.term(before: position) == state.term
        if !keepLog {
            _ = try? log.commitBatch()
            try log.reset(to: position, term: state.term)
            reportedPersisted = position
            currentAppend = nil
            carry.drop()
        }
        try step(.snapshotInstalled(position: position, term: state.term))
        restoreRuntimeState(from: state)
        shipping.installed += 1
        shared.snapshotInstall.release()
        shared.wakeService()
        event("installed \(entry) from the leader; the log \(keepLog ? "is kept" : "starts there now")")
    }
}

extension ConsensusAgent {
    /// At start, before `restore`: the archive's newest snapshot, at `position` (term `term`), lies
    /// past the log's end (installed from a leader, the node stopped before resetting its log; or
    /// the log's tail was lost in a power loss): reset the log to start there and tell the core, so
    /// the node restarts from that complete, committed state — never from a mix of it and its old log.
    public func resumeInstall(position: LogPosition, term: Term) throws {
        guard position > log.appendedPosition else { return }
        _ = try? log.commitBatch()
        try log.reset(to: position, term: term)
        reportedPersisted = position
        try step(.snapshotInstalled(position: position, term: term))
        event("the newest snapshot, at \(position.rawValue), is past the log's end: the log starts there now")
    }

    /// Moves the log start up to the newest snapshot's position (applied and committed here), as
    /// log compaction does: a follower that needs an earlier position then gets the snapshot. The
    /// simulation's and tests' way to make a leader lack old positions. Returns the new start.
    @discardableResult
    package func moveLogStartToNewestSnapshot() throws -> LogPosition? {
        guard let entry = shared.newestSnapshot.withLock({ $0 }), entry.position > log.startPosition, entry.position <= publishedCommit,
              entry.position.rawValue <= shared.appliedPosition.load(ordering: .acquiring)
        else { return nil }
        try log.moveStart(to: entry.position)
        try step(.logCompacted(upTo: entry.position))
        event("log start moved to \(entry.position.rawValue) (\(entry))")
        return entry.position
    }
}
