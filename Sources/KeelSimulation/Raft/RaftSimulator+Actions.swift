import KeelCore
import KeelRaft

/// The simulator's "runtime": carries out a core's actions on the member's log model, disk and network.
extension RaftSimulator {
    func execute(member: Int, payload: ArraySlice<SimulatedEntry>) {
        for action in output.actions {
            switch action {
            case .persistHardState(let state):
                members[member].hardState = state  // written and fdatasync'ed before anything that follows
            case .truncate(let position):
                truncate(member: member, from: position)
            case .append(let from, let to, let term, let kind):
                append(member: member, from: from, to: to, term: term, kind: kind, payload: payload)
            case .send(let to, let message):
                send(from: member, to: Int(to.rawValue), message: message)
            case .sendSnapshot(let to):
                let log = members[member].log
                let delay = random.integer(in: 1_000_000...20_000_000)
                guard !isBlocked(from: member, to: Int(to.rawValue)) else { continue }
                queue.schedule(.deliverSnapshot(to: Int(to.rawValue), from: member, position: log.basePosition,
                                                term: log.baseTerm, digest: log.baseDigest), atNanos: nowNanos + delay)
            case .commitAdvanced(let position):
                checker.applied(upTo: position, log: members[member].log, member: member)
                if members[member].core!.role == .leader {
                    checker.leaderCommitted(upTo: position, term: members[member].core!.term)
                    checkCommittedOnMajority(position, leader: member)
                }
            case .proposalRefused:
                break
            case .roleChanged(let role, let term, _):
                if role == .leader {
                    result.elections += 1
                    checker.leaderElected(member: member, term: term)
                    checker.checkLeaderCompleteness(members[member].log, member: member, term: term)
                    if faultsEnabled && random.chance(isolateNewLeaderChance) {
                        queue.schedule(.isolate(member: member), atNanos: nowNanos + random.integer(in: 0...3_000_000))
                    }
                }
            }
        }
    }

    private func truncate(member: Int, from position: LogPosition) {
        if members[member].core!.role == .leader {
            checker.fail("leader append-only: leader m\(member) truncated its log at \(position)")
        }
        guard members[member].log.isBoundary(position) else {
            checker.fail("m\(member) truncated at \(position), inside an entry")
            return
        }
        members[member].log.truncate(from: position)
    }

    private func append(member: Int, from: LogPosition, to: LogPosition, term: Term, kind: RaftEntryKind, payload: ArraySlice<SimulatedEntry>) {
        guard members[member].log.endPosition == from else {
            checker.fail("m\(member) was told to append at \(from) but its log ends at \(members[member].log.endPosition)")
            return
        }
        switch kind {
        case .replicated:
            var appended = false
            for entry in payload where entry.end > from && entry.end <= to {
                let expected = SimulatedEntry.chain(members[member].log.lastDigest, end: entry.end, term: entry.term, payload: entry.payload)
                if expected != entry.digest {
                    checker.fail("log matching: m\(member) appended at \(from) entries that do not follow its log")
                    return
                }
                members[member].log.entries.append(entry)
                checker.entryAppended(entry, member: member)
                appended = true
            }
            if !appended || members[member].log.endPosition != to {
                checker.fail("m\(member) was told to append [\(from), \(to)) which the message did not carry whole")
                return
            }
        case .proposal, .leadershipTerm, .configurationChange:
            let entry = members[member].log.append(end: to, term: term, payload: nextPayload)
            nextPayload += 1
            checker.entryAppended(entry, member: member)
            if kind == .proposal { members[member].lastAccepted = (term, to) }
        }
        switch options.mode {
        case .durable:
            requestSync(member)
        case .replicated:
            // Acknowledged once written; fdatasync runs in the background.
            let delay = random.integer(in: 10_000...200_000)
            queue.schedule(.writeCompleted(member: member, incarnation: members[member].incarnation, position: to, term: term),
                           atNanos: nowNanos + delay)
            requestSync(member)
        }
    }

    /// One fdatasync in flight per member; what is written meanwhile waits for the next one.
    func requestSync(_ member: Int) {
        guard !members[member].syncInFlight else {
            members[member].syncWanted = true
            return
        }
        members[member].syncInFlight = true
        members[member].syncWanted = false
        members[member].syncCapture = members[member].log.entries
        let delay: Int64
        if options.mode == .replicated {
            delay = random.integer(in: 10_000_000...150_000_000)  // background sync: seldom
        } else {
            delay = random.chance(0.05) ? random.integer(in: 5_000_000...40_000_000) : random.integer(in: 100_000...3_000_000)
        }
        queue.schedule(.syncCompleted(member: member, incarnation: members[member].incarnation), atNanos: nowNanos + delay)
    }

    func syncCompleted(_ member: Int) {
        members[member].syncInFlight = false
        let capture = members[member].syncCapture
        members[member].log.durableEntries = capture
        members[member].syncCapture = []
        if options.mode == .durable, let last = capture.last, members[member].isUp {
            step(member, .persisted(upTo: last.end, term: last.term))
        }
        if members[member].syncWanted { requestSync(member) }
    }

    func installSnapshot(member: Int, position: LogPosition, term: Term, digest: UInt64) {
        guard let core = members[member].core, core.shouldInstallSnapshot(position: position) else { return }
        checker.snapshotInstalled(position: position, digest: digest, member: member)
        if core.termIndex.term(at: position) == term {
            // Keep the log after the snapshot's last entry (the rule `snapshotInstalled` documents).
            if members[member].log.digest(at: position) != digest {
                checker.fail("log matching: m\(member) holds an entry ending at \(position) in \(term) that differs from the snapshot's")
            }
            members[member].log.compact(upTo: position)
        } else {
            members[member].log.installSnapshot(position: position, term: term, digest: digest)
        }
        step(member, .snapshotInstalled(position: position, term: term))
    }

    // MARK: - Network

    func isBlocked(from: Int, to: Int) -> Bool { blocked[from * members.count + to] }

    func send(from: Int, to: Int, message: RaftMessage) {
        var payload: ArraySlice<SimulatedEntry> = []
        if case .appendEntries(let append) = message.body {
            guard let slice = members[from].log.slice(from: append.prevPosition, to: append.endPosition) else {
                checker.fail("m\(from) sent an append [\(append.prevPosition), \(append.endPosition)) its log does not hold whole")
                return
            }
            payload = slice
        }
        guard !isBlocked(from: from, to: to), !random.chance(lossRate) else { return }
        queue.schedule(.deliver(to: to, from: from, message: message, payload: payload), atNanos: nowNanos + messageDelay())
        if faultsEnabled && random.chance(0.01) {  // duplication
            queue.schedule(.deliver(to: to, from: from, message: message, payload: payload), atNanos: nowNanos + messageDelay())
        }
    }

    /// Mostly sub-millisecond, with a long tail (which also reorders).
    private func messageDelay() -> Int64 {
        if faultsEnabled && random.chance(0.03) { return random.integer(in: 5_000_000...300_000_000) }
        return random.integer(in: 50_000...1_000_000)
    }
}
