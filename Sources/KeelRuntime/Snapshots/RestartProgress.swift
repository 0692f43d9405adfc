import KeelCore
import KeelService

/// Progress lines for long restarts (issue 9 §2): at most one a second, with the position, the
/// rate and the time left. Quiet when the work ends within the first second.
struct ProgressPacer {
    let startNanos: Int64
    var lastReportNanos: Int64
    static let intervalNanos: Int64 = 1_000_000_000

    init(startNanos: Int64) {
        self.startNanos = startNanos
        lastReportNanos = startNanos
    }

    /// True when a line is due at `nowNanos`.
    mutating func due(_ nowNanos: Int64) -> Bool {
        guard nowNanos - lastReportNanos >= Self.intervalNanos else { return false }
        lastReportNanos = nowNanos
        return true
    }

    /// "12.0 of 100.0 MiB, 40.1 MiB/s, 2 s left".
    func line(done: Int64, total: Int64, nowNanos: Int64) -> String {
        let seconds = max(Double(nowNanos - startNanos) / 1e9, 1e-9)
        let rate = Double(done) / seconds
        let left = rate > 0 ? Double(max(0, total - done)) / rate : 0
        return "\(mebibytes(done)) of \(mebibytes(total)) MiB, \(mebibytes(Int64(rate))) MiB/s, \(Int(left.rounded(.up))) s left"
    }

    private func mebibytes(_ bytes: Int64) -> String {
        let tenths = (bytes * 10) >> 20
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// The service's reader of a recovered snapshot, reporting how much of it the service has loaded.
final class ProgressSnapshotReader: SnapshotReader {
    let base: any SnapshotReader
    let clock: (() -> Int64)?
    let report: ((String) -> Void)?
    let totalBytes: Int64
    var readBytes: Int64 = 0
    var pacer: ProgressPacer?

    init(_ base: any SnapshotReader, clock: (() -> Int64)?, report: ((String) -> Void)?) {
        self.base = base
        self.clock = clock
        self.report = report
        totalBytes = (base as? any SnapshotSectionLength)?.sectionByteCount ?? 0
        if let clock { pacer = ProgressPacer(startNanos: clock()) }
    }

    var serviceVersion: UInt32 { base.serviceVersion }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let count = try base.read(into: buffer)
        readBytes += Int64(count)
        if let clock, pacer != nil {
            let now = clock()
            if pacer!.due(now) {
                report?("loading snapshot: \(pacer!.line(done: readBytes, total: max(totalBytes, readBytes), nowNanos: now))")
            }
        }
        return count
    }

    /// The service's `onStart` returned.
    func finished() {
        guard let clock, let pacer, clock() - pacer.startNanos >= ProgressPacer.intervalNanos else { return }
        report?("snapshot loaded: \(readBytes) bytes in \((clock() - pacer.startNanos) / 1_000_000) ms")
    }
}

/// A reader that knows how long its section is (the archive's readers do).
public protocol SnapshotSectionLength {
    var sectionByteCount: Int64 { get }
}

/// The replay after a restart: the service agent applies the local log from the snapshot's position
/// to the end the log had at start (as fast as the commit position allows).
struct ReplayProgress {
    let from: LogPosition
    let to: LogPosition
    let clock: () -> Int64
    var pacer: ProgressPacer
    private(set) var isDone = false
    /// From the start to the report that found the replay done.
    private(set) var elapsedNanos: Int64 = 0

    init(from: LogPosition, to: LogPosition, startNanos: Int64, clock: @escaping () -> Int64) {
        self.from = from
        self.to = to
        self.clock = clock
        pacer = ProgressPacer(startNanos: startNanos)
    }

    /// A line when one is due, or when the replay just ended (if it took long enough to report).
    mutating func report(_ applied: LogPosition) -> String? {
        let now = clock()
        if applied >= to {
            isDone = true
            elapsedNanos = now - pacer.startNanos
            let millis = elapsedNanos / 1_000_000
            return "replayed the local log from \(from.rawValue) to \(applied.rawValue) in \(millis) ms; serving"
        }
        guard pacer.due(now) else { return nil }
        return "replaying the local log: position \(applied.rawValue) of \(to.rawValue), "
            + pacer.line(done: applied.bytes(since: from), total: to.bytes(since: from), nowNanos: now)
    }
}
