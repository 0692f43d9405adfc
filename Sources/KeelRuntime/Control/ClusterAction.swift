/// A cluster-wide action, carried by a `.clusterAction` log entry (in its correlation id, no
/// payload) so every member applies it at the same position, in log order (issue 10 §3).
public enum ClusterAction: Int64, Sendable, CaseIterable, CustomStringConvertible {
    /// The leader refuses new client requests (retryable `clusterSuspended`) until a resume;
    /// sessions, keep-alives, timers and snapshots carry on. Replicated state: in snapshots.
    case suspend = 1
    /// Client requests are taken again.
    case resume = 2
    /// Orderly shutdown: every member, on applying it, writes a final snapshot at its end and exits.
    case shutdown = 3

    public var description: String {
        switch self {
        case .suspend: "suspend"
        case .resume: "resume"
        case .shutdown: "shutdown"
        }
    }
}
