import Keel

/// Named locks held under leases (a classic job for a replicated state machine): a client acquires
/// a lock for a holder name and a time to live; the lock is theirs until they release it or the
/// lease expires — by a cluster timer, so every replica frees it at the same log position.
///
/// Requests and responses are short lines of text (fine for an example; a service on a hot path
/// would use fixed binary layouts):
///
///     acquire <lock> <holder> <ttl-ms>   →  granted | held by <holder>
///     release <lock> <holder>            →  released | not held by <holder>
///     owner <lock>                       →  <holder> | free
///     anything else                      →  error: <why>
struct LeaseLockService: ClusteredService, StateDigestible {
    struct Lease: Equatable {
        var holder: String
        var expires: ClusterTime
        /// The lease's timer (correlation ids are the service's own: one per lease granted).
        var timerId: Int64
    }

    var cluster: Cluster?
    var leases: [String: Lease] = [:]
    /// Which lock each timer belongs to.
    var lockOfTimer: [Int64: String] = [:]
    var nextTimerId: Int64 = 1
    var expired: Int64 = 0

    mutating func onStart(cluster: Cluster, snapshot: (any SnapshotReader)?) throws {
        self.cluster = cluster
        guard let snapshot else { return }
        guard snapshot.serviceVersion == snapshotVersion else {
            throw SnapshotFormatError.unsupportedVersion(found: snapshot.serviceVersion, supported: snapshotVersion)
        }
        nextTimerId = try snapshot.readInt64()
        expired = try snapshot.readInt64()
        for _ in 0..<(try snapshot.readInt64()) {
            let lock = String(decoding: try snapshot.readLengthPrefixed(maxBytes: 256), as: UTF8.self)
            let holder = String(decoding: try snapshot.readLengthPrefixed(maxBytes: 256), as: UTF8.self)
            let lease = Lease(holder: holder, expires: ClusterTime(rawValue: try snapshot.readInt64()), timerId: try snapshot.readInt64())
            leases[lock] = lease
            lockOfTimer[lease.timerId] = lock
        }
    }

    mutating func onSessionOpen(_ session: ClientSession, timestamp: ClusterTime) {}
    mutating func onSessionClose(_ session: ClientSession, timestamp: ClusterTime, reason: CloseReason) {}

    mutating func onSessionMessage(_ session: ClientSession, timestamp: ClusterTime, message: UnsafeRawBufferPointer) {
        let words = String(decoding: message, as: UTF8.self).split(separator: " ").map(String.init)
        session.offer(Array(answer(words, now: timestamp).utf8))
    }

    private mutating func answer(_ words: [String], now: ClusterTime) -> String {
        switch (words.first, words.count) {
        case ("acquire", 4):
            guard let ttl = Int64(words[3]), ttl > 0, ttl <= 86_400_000 else { return "error: ttl must be 1…86400000 ms" }
            let (lock, holder) = (words[1], words[2])
            if let lease = leases[lock], lease.holder != holder { return "held by \(lease.holder)" }
            // Granted, or renewed by its holder: the same timer id reschedules the expiry.
            let timerId = leases[lock]?.timerId ?? nextTimerId
            if timerId == nextTimerId { nextTimerId += 1 }
            let expires = ClusterTime(rawValue: now.rawValue + ttl * 1_000_000)
            leases[lock] = Lease(holder: holder, expires: expires, timerId: timerId)
            lockOfTimer[timerId] = lock
            cluster?.scheduleTimer(correlationId: timerId, deadline: expires)
            return "granted"
        case ("release", 3):
            guard let lease = leases[words[1]], lease.holder == words[2] else { return "not held by \(words[2])" }
            leases.removeValue(forKey: words[1])
            lockOfTimer.removeValue(forKey: lease.timerId)
            cluster?.cancelTimer(correlationId: lease.timerId)
            return "released"
        case ("owner", 2):
            return leases[words[1]]?.holder ?? "free"
        default:
            return "error: expected 'acquire LOCK HOLDER TTL_MS', 'release LOCK HOLDER' or 'owner LOCK'"
        }
    }

    /// A lease ran out: the lock is free again.
    mutating func onTimerEvent(correlationId: Int64, timestamp: ClusterTime) {
        guard let lock = lockOfTimer.removeValue(forKey: correlationId) else { return }
        leases.removeValue(forKey: lock)
        expired += 1
    }

    mutating func onTakeSnapshot(_ writer: any SnapshotWriter) throws {
        try writer.write(nextTimerId)
        try writer.write(expired)
        try writer.write(Int64(leases.count))
        // In lock-name order, not the dictionary's (a per-process hash order): equal states, equal snapshots.
        for (lock, lease) in leases.sorted(by: { $0.key < $1.key }) {
            try Array(lock.utf8).withUnsafeBytes { try writer.writeLengthPrefixed($0) }
            try Array(lease.holder.utf8).withUnsafeBytes { try writer.writeLengthPrefixed($0) }
            try writer.write(lease.expires.rawValue)
            try writer.write(lease.timerId)
        }
    }

    func stateDigest() -> StateDigest {
        var digest = StateDigest()
        digest.add(-1, nextTimerId, expired)
        for (lock, lease) in leases {
            var entry = StateDigest.Entry()
            entry.combine(bytes: Array(lock.utf8))
            entry.combine(bytes: Array(lease.holder.utf8))
            entry.combine(lease.expires.rawValue)
            entry.combine(lease.timerId)
            digest.add(entry)
        }
        return digest
    }
}
