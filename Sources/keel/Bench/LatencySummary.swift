import Histogram

/// Percentiles of one latency series, in nanoseconds, with the sample count.
struct LatencySummary: Codable {
    var count: UInt64
    var p50Nanos: UInt64
    var p99Nanos: UInt64
    var p999Nanos: UInt64
    var maxNanos: UInt64
    var meanNanos: Double

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        p50Nanos = histogram.valueAtPercentile(50)
        p99Nanos = histogram.valueAtPercentile(99)
        p999Nanos = histogram.valueAtPercentile(99.9)
        maxNanos = histogram.max
        meanNanos = histogram.mean
    }

    /// A histogram sized for I/O latencies: 100 ns to 10 s at three significant digits.
    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 100, highestTrackableValue: 10_000_000_000, numberOfSignificantValueDigits: .three)
    }
}

/// Formats nanoseconds as microseconds with one decimal ("83.2").
func micros(_ nanos: UInt64) -> String { formatFixed(Double(nanos) / 1000, decimals: 1) }

func formatFixed(_ value: Double, decimals: Int) -> String {
    var scale = 1.0
    for _ in 0..<decimals { scale *= 10 }
    let rounded = (value * scale).rounded() / scale
    var text = String(rounded)
    if let dot = text.firstIndex(of: ".") {
        let fraction = text[text.index(after: dot)...].count
        if fraction < decimals { text += String(repeating: "0", count: decimals - fraction) }
        if decimals == 0 { text = String(text[..<dot]) }
    }
    return text
}

/// Pads `text` on the left to `width` characters (for right-aligned table columns).
func padLeft(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : String(repeating: " ", count: width - text.count) + text
}

func padRight(_ text: String, _ width: Int) -> String {
    text.count >= width ? text : text + String(repeating: " ", count: width - text.count)
}
