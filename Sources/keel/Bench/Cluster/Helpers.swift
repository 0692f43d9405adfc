import CKeelShims
import Glibc

/// Timed sleeps in this process fire within a microsecond of their deadline instead of the default
/// 50 µs slack: the load's pacing and the relay's pacing both depend on it.
@discardableResult
func keelSetTimerSlack() -> Int32 { keel_set_timer_slack_nanos(1_000) }

/// A one-line progress report for long phases: rewritten in place on a terminal, a line every 5 s
/// otherwise.
final class ProgressLine {
    let label: String
    let totalNanos: Int64
    let startNanos: Int64
    private var lastPrintNanos: Int64 = 0
    private var printed = false
    private let isTerminal = isatty(1) != 0

    init(label: String, startNanos: Int64, totalNanos: Int64) {
        self.label = label
        self.startNanos = startNanos
        self.totalNanos = totalNanos
        lastPrintNanos = startNanos
    }

    func update(now: Int64, sent: Int64, received: Int64, backlog: Int64) {
        let interval: Int64 = isTerminal ? 250_000_000 : 5_000_000_000
        guard now - lastPrintNanos >= interval else { return }
        lastPrintNanos = now
        let elapsed = Double(max(0, now - startNanos)) / 1e9
        let line = "  \(label): \(formatFixed(elapsed, decimals: 1)) s of \(formatFixed(Double(totalNanos) / 1e9, decimals: 0)), sent \(sent), echoed \(received), backlog \(backlog)"
        if isTerminal {
            print("\r\u{1B}[K" + line, terminator: "")
            fflush(nil)
        } else {
            print(line)
            fflush(nil)
        }
        printed = true
    }

    func finish() {
        if printed && isTerminal { print("\r\u{1B}[K", terminator: ""); fflush(nil) }
    }
}
