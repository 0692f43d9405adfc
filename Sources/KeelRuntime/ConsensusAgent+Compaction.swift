import KeelCore
import KeelLog

/// Where the log may start after compaction, from what the node knows (all positions in bytes).
/// Pure, so the rule is tested on its own.
struct CompactionLimits: Sendable, Equatable {
    /// The oldest snapshot the archive keeps (the service agent publishes it once it keeps K).
    var oldestKeptSnapshot: LogPosition
    /// The Raft core's commit position: nothing uncommitted is ever dropped.
    var commit: LogPosition
    /// What the service agent has applied: it never reads below this again.
    var applied: LogPosition
    /// What an fdatasync covers: a power loss cannot cut the log below it, so the snapshot the node
    /// would restart from stays within the log.
    var durable: LogPosition
    var logStart: LogPosition
    var appended: LogPosition
    var slackBytes: Int64
    var segmentLengthBytes: Int64

    /// The new log start — a segment start, so whole segments go and the start is a frame boundary
    /// — or nil when the log cannot move forward. It lies `slackBytes` or more before the oldest
    /// kept snapshot and below every other limit, and inside the log (never at its very end, so
    /// the log always keeps the segment it appends to).
    var target: LogPosition? {
        let bound = min(oldestKeptSnapshot, commit, applied, durable, appended).rawValue - max(0, slackBytes)
        guard bound > 0 else { return nil }
        var start = bound - bound % segmentLengthBytes
        if start >= appended.rawValue { start -= segmentLengthBytes }
        guard start > logStart.rawValue else { return nil }
        return LogPosition(start)
    }
}

// Compaction (DESIGN.md decision 11, issue 10 §1). The service agent writes snapshots and tells
// this agent (SharedNodeState.compactionBound) the oldest one the archive keeps; this agent owns
// the log and the core, so it moves the log start: the start record durably, then the segments
// wholly before it deleted (ReplicatedLog.moveStart), then the core told (`.logCompacted`), which
// from then on sends a follower that needs earlier positions to the snapshot state.
//
// Readers: the service agent reads only at or after what it has applied, and the target stays
// below that; this agent's own reads (AppendEntries bytes, the committed fold, the timer scan)
// start at or after the core's start, the commit position or the service's applied position.
extension ConsensusAgent {
    /// Moves the log start when a newer snapshot allows it (checked on the tick, every millisecond).
    func compactLogIfDue() throws {
        guard let slack = configuration.compactionSlackBytes else { return }
        let bound = shared.compactionBound.load(ordering: .acquiring)
        guard bound > log.startPosition.rawValue, bound != compactionFailedBound else { return }
        let limits = CompactionLimits(
            oldestKeptSnapshot: LogPosition(bound), commit: min(core.commitPosition, publishedCommit),
            applied: LogPosition(shared.appliedPosition.load(ordering: .acquiring)), durable: log.durablePosition,
            logStart: log.startPosition, appended: log.appendedPosition, slackBytes: slack,
            segmentLengthBytes: log.configuration.segmentLengthBytes)
        guard let target = limits.target else { return }
        let startNanos = clock.monotonicNanos()
        let before = log.startPosition
        let removed: [String]
        do { removed = try log.moveStart(to: target) } catch {
            // Retried when the next snapshot moves the bound. If the start record was written, the
            // start did move (recovery deletes the leftover segments): the core must know.
            compactionFailedBound = bound
            reportError(.storage, "log compaction to \(target.rawValue) failed (the log starts at \(log.startPosition.rawValue)): \(error)")
            if log.startPosition > before { try step(.logCompacted(upTo: log.startPosition)) }
            return
        }
        try step(.logCompacted(upTo: target))
        counters?.logStartPosition.set(target.rawValue)
        let micros = (clock.monotonicNanos() - startNanos) / 1_000
        event("log compacted: start \(before.rawValue) -> \(target.rawValue) (oldest snapshot kept at \(bound)), \(removed.count) segments deleted in \(micros) us")
    }
}
