import KeelCore
import KeelService

/// Every replica's service must hold the same state at the same log position: the first digest
/// taken at a position (by any replica, any incarnation) is the one every later one must equal.
/// Digests are order-independent (`StateDigest`), so replicas whose dictionaries iterate
/// differently still agree.
final class ServiceDigestCheck {
    private var digestAtPosition: [Int64: (member: Int, digest: StateDigest)] = [:]
    /// Digests compared so far.
    private(set) var comparisons = 0

    /// Records `digest`; returns a violation if another replica had a different one at `position`.
    func record(member: Int, position: LogPosition, digest: StateDigest) -> String? {
        guard let first = digestAtPosition[position.rawValue] else {
            digestAtPosition[position.rawValue] = (member, digest)
            return nil
        }
        comparisons += 1
        guard first.digest != digest else { return nil }
        return "service state diverged at position \(position.rawValue): m\(first.member) had \(first.digest), m\(member) has \(digest)"
    }
}
