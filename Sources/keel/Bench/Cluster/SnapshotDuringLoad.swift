import Glibc
import KeelClient
import KeelCore
import KeelLocalCluster

/// `keel bench cluster --snapshot-during`: p99.9 round trip at a fixed rate while every member takes
/// a snapshot (an admin request in the measured window), against the same rate without one, in
/// alternating phases of the same run (issue 9 §4: goal ≤ 2× the no-snapshot p99.9).
struct SnapshotDuringLoadResult: Codable {
    struct Pair: Codable {
        var without: PercentileSummary
        var with: PercentileSummary
        /// Each member's snapshot write time (its snapshot-duration-ns counter), ms.
        var snapshotMillis: [Int64]
        var loadAverage: String
        var ratio: Double { Double(with.p999Nanos) / Double(max(1, without.p999Nanos)) }
    }

    var ratePerSecond: Double
    var requestAfterSeconds: Double
    var stateKeys: Int
    var valueBytes: Int
    var pairs: [Pair]
    var medianRatio: Double { pairs.map(\.ratio).sorted()[pairs.count / 2] }
}

extension ClusterBenchmark {
    /// Puts every key of `keyValue` once (so the state, and each snapshot, holds them all).
    func preload(_ keyValue: KeyValueLoad, inFlight: Int) throws {
        let client = load.clients[0]
        var request = KeyValueRequestBytes.put(key: 0, valueBytes: keyValue.valueBytes)
        var next = 0, answered = 0, failures = 0
        let started = monotonicNanos()
        while answered < keyValue.keyCount {
            try checkInterrupted()
            while next < keyValue.keyCount && client.outstandingCount < inFlight {
                KeyValueRequestBytes.setKey(&request, next)
                guard case .accepted = request.withUnsafeBytes({ client.offer($0) }) else { break }
                next += 1
            }
            do {
                _ = try client.poll(waitingUpToNanos: 1_000_000) { response in
                    guard response.requestID > 0 else { return }
                    answered += 1
                    if response.payload.count < 1 || response.payload[0] != 0 { failures += 1 }
                }
            } catch { throw BenchmarkError("client while preloading: \(error)") }
        }
        guard failures == 0 else { throw BenchmarkError("preload: \(failures) puts not answered ok") }
        let seconds = Double(monotonicNanos() - started) / 1e9
        print("preloaded \(grouped(Double(keyValue.keyCount))) keys × \(keyValue.valueBytes) B in \(formatFixed(seconds, decimals: 1)) s")
    }

    /// `pairs` times: a phase at `rate` without a snapshot, then one with a snapshot requested
    /// `requestAfterNanos` into the measured window (the order alternates pair by pair). After each
    /// snapshot phase it waits for every member to have written its snapshot.
    func snapshotDuringLoad(rate: Double, pairs: Int, requestAfterNanos: Int64, keyValue: KeyValueLoad) throws -> SnapshotDuringLoadResult {
        guard let cluster else { throw BenchmarkError("--snapshot-during needs the local cluster (its counters)") }
        var result = SnapshotDuringLoadResult(
            ratePerSecond: rate, requestAfterSeconds: Double(requestAfterNanos) / 1e9, stateKeys: keyValue.keyCount, valueBytes: keyValue.valueBytes,
            pairs: [])
        var correlation: Int64 = 1_000
        for pair in 1...pairs {
            var without: PercentileSummary?, with: PercentileSummary?, millis: [Int64] = []
            for step in 0..<2 {
                try checkInterrupted()
                let snapshotPhase = (step == 0) == (pair % 2 == 0)
                if !snapshotPhase {
                    without = try clusterPhase(rate: rate, measureNanos: settings.measureNanos, label: "no-snapshot \(pair)").latency
                    continue
                }
                let before = cluster.members.map { cluster.counter($0.id, .snapshotsTaken) ?? 0 }
                var requestAt: Int64?
                var sent = false
                correlation += 1
                let id = correlation
                with = try clusterPhase(rate: rate, measureNanos: settings.measureNanos, label: "snapshot \(pair)") { now in
                    if requestAt == nil { requestAt = now + self.settings.warmUpNanos + requestAfterNanos }
                    if !sent, let at = requestAt, now >= at { sent = self.load.clients[0].sendAdmin(.takeSnapshot, correlationID: id) }
                }.latency
                guard sent else { throw BenchmarkError("the snapshot request was not sent within the phase") }
                millis = try waitForSnapshots(cluster, before: before)
            }
            let entry = SnapshotDuringLoadResult.Pair(without: without!, with: with!, snapshotMillis: millis, loadAverage: loadAverage())
            result.pairs.append(entry)
            defer { fflush(nil) }
            print("  pair \(pair): p99.9 without \(micros(entry.without.p999Nanos)) µs, with a snapshot \(micros(entry.with.p999Nanos)) µs (\(formatFixed(entry.ratio, decimals: 2))×; p99 \(micros(entry.without.p99Nanos)) → \(micros(entry.with.p99Nanos)) µs, max \(micros(entry.without.maxNanos)) → \(micros(entry.with.maxNanos)) µs); snapshot write per member \(millis.map { "\($0) ms" }.joined(separator: ", ")); load average \(entry.loadAverage)")
        }
        return result
    }

    /// Waits (keeping the sessions alive) until every member's snapshot count passed `before`; each
    /// member's last snapshot write time in ms.
    private func waitForSnapshots(_ cluster: LocalCluster, before: [Int64]) throws -> [Int64] {
        let deadline = monotonicNanos() + 300_000_000_000
        while true {
            let taken = cluster.members.map { cluster.counter($0.id, .snapshotsTaken) ?? 0 }
            if zip(taken, before).allSatisfy({ $0 > $1 }) { break }
            if monotonicNanos() > deadline { throw BenchmarkError("not every member wrote its snapshot within 5 minutes: \(taken) (before \(before))") }
            try runLoad(forNanos: 20_000_000)
        }
        return cluster.members.map { ((cluster.counter($0.id, .snapshotDurationNanos) ?? -1) + 500_000) / 1_000_000 }
    }
}
