import KeelCore
import KeelLog

// Cluster-wide actions on the service side: every member applies them at the same log position.
extension ServiceAgent {
    func applyClusterAction(_ frame: LogFrameView) {
        guard let action = ClusterAction(rawValue: frame.correlationID) else { return }
        switch action {
        case .suspend, .resume:
            suspended = action == .suspend
            shared.suspended.store(suspended, ordering: .releasing)
            eventHandler?("cluster \(action == .suspend ? "suspended" : "resumed") at position \(frame.endPosition.rawValue)")
        case .shutdown:
            applyShutdown(frame)
        }
    }

    /// A final snapshot exactly at the entry's end, then the node may stop (`SharedNodeState.
    /// shutdownPosition`; the consensus agent says when). In a replay after a restart the entry
    /// is history: the snapshot is written if missing, and the node keeps running.
    private func applyShutdown(_ frame: LogFrameView) {
        takeSnapshot(at: SnapshotPoint(position: frame.endPosition, term: frame.term, timestamp: frame.timestamp, suspended: suspended))
        guard frame.endPosition > logEndAtStart else {
            eventHandler?("shutdown entry at position \(frame.position.rawValue) replayed: already shut down once; carrying on")
            return
        }
        eventHandler?("shutdown applied at position \(frame.endPosition.rawValue): final snapshot written; stopping")
        shared.shutdownPosition.store(frame.endPosition.rawValue, ordering: .releasing)
        shared.wakeConsensus()
    }
}
