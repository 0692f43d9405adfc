import Foundation
import Histogram

/// The percentiles the report shows, in nanoseconds.
struct PercentileSummary: Codable, Equatable {
    var count: UInt64
    var p50Nanos: UInt64
    var p90Nanos: UInt64
    var p99Nanos: UInt64
    var p999Nanos: UInt64
    var p9999Nanos: UInt64
    var maxNanos: UInt64
    var meanNanos: Double

    init(_ histogram: Histogram<UInt64>) {
        count = histogram.totalCount
        p50Nanos = histogram.valueAtPercentile(50)
        p90Nanos = histogram.valueAtPercentile(90)
        p99Nanos = histogram.valueAtPercentile(99)
        p999Nanos = histogram.valueAtPercentile(99.9)
        p9999Nanos = histogram.valueAtPercentile(99.99)
        maxNanos = histogram.max
        meanNanos = histogram.totalCount == 0 ? 0 : histogram.mean
    }

    /// The columns of the table, in order, with their names.
    static let columnNames = ["p50", "p90", "p99", "p99.9", "p99.99", "max"]
    var columns: [UInt64] { [p50Nanos, p90Nanos, p99Nanos, p999Nanos, p9999Nanos, maxNanos] }
}

/// HdrHistogram's percentile-distribution text (`.hgrm`), values in microseconds, as read by
/// HdrHistogram's plotter and by `PercentilePlot`.
enum HgrmFile {
    static func text(_ histogram: Histogram<UInt64>) -> String {
        var text = ""
        histogram.outputPercentileDistribution(to: &text, outputValueUnitScalingRatio: 1000, percentileTicksPerHalfDistance: 5)
        return text
    }

    static func write(_ histogram: Histogram<UInt64>, to path: String) throws {
        try text(histogram).write(toFile: path, atomically: true, encoding: .utf8)
    }
}

/// A latency-by-percentile plot written as SVG by hand: x is the percentile on a log-scaled
/// "1 − p" axis (90%, 99%, 99.9%, … equally spaced), y the latency on a log scale; one line per
/// series.
struct PercentilePlot {
    struct Series {
        var label: String
        /// CSS colour.
        var color: String
        var dashed: Bool
        /// (percentile in 0..<100, latency in nanoseconds), percentile ascending.
        var points: [(percentile: Double, nanos: UInt64)]

        /// The points of a histogram's percentile iteration (5 ticks per half distance); the 100%
        /// point is left off (it lies at infinity on this axis) and the max drawn at the last tick.
        init(label: String, color: String, dashed: Bool, histogram: Histogram<UInt64>) {
            var points: [(percentile: Double, nanos: UInt64)] = []
            for value in histogram.percentiles(ticksPerHalfDistance: 5) where value.percentileLevelIteratedTo < 100 {
                points.append((value.percentileLevelIteratedTo, value.value))
            }
            if let last = points.last, histogram.max > last.nanos {
                points.append((min(99.9999, max(last.percentile, 100 - (100 - last.percentile) / 2)), histogram.max))
            }
            self.init(label: label, color: color, dashed: dashed, points: points)
        }

        init(label: String, color: String, dashed: Bool, points: [(percentile: Double, nanos: UInt64)]) {
            self.label = label
            self.color = color
            self.dashed = dashed
            self.points = points
        }
    }

    var title: String
    var series: [Series]
    var width = 900.0
    var height = 560.0
    let left = 80.0, right = 220.0, top = 50.0, bottom = 60.0

    static let palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]

    /// log10(1 / (1 − p)): 0 at 0%, 1 at 90%, 2 at 99%, …
    static func nines(_ percentile: Double) -> Double { log10(1 / max(1e-9, 1 - percentile / 100)) }

    var ninesRange: Double {
        let most = series.flatMap { $0.points.map { Self.nines($0.percentile) } }.max() ?? 2
        return min(7, max(2, (most - 1e-6).rounded(.up)))
    }

    /// Decades of microseconds shown: from the floor of the smallest to the ceiling of the largest.
    var decadeRange: (low: Double, high: Double) {
        let values = series.flatMap { $0.points.map { max(1.0, Double($0.nanos) / 1000) } }
        let low = (values.min().map { log10($0) } ?? 0).rounded(.down)
        let high = (values.max().map { log10($0) } ?? 3).rounded(.up)
        return (low, max(high, low + 1))
    }

    func x(_ percentile: Double) -> Double {
        left + (width - left - right) * min(Self.nines(percentile), ninesRange) / ninesRange
    }

    func y(_ nanos: UInt64) -> Double {
        let (low, high) = decadeRange
        let decade = log10(max(1.0, Double(nanos) / 1000))
        return top + (height - top - bottom) * (1 - (decade - low) / (high - low))
    }

    static func percentileLabel(nines: Int) -> String {
        switch nines {
        case 0: return "0%"
        case 1: return "90%"
        case 2: return "99%"
        default: return "99." + String(repeating: "9", count: nines - 2) + "%"
        }
    }

    static func latencyLabel(decade: Int) -> String {
        let micros = pow(10.0, Double(decade))
        if micros >= 1_000_000 { return "\(Int(micros / 1_000_000)) s" }
        if micros >= 1000 { return "\(Int(micros / 1000)) ms" }
        return "\(Int(micros)) µs"
    }

    func svg() -> String {
        func f(_ value: Double) -> String { String(format: "%.1f", value) }
        var out = """
        <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="12">
        <rect width="100%" height="100%" fill="white"/>
        <text x="\(f(width / 2))" y="24" text-anchor="middle" font-size="15">\(Self.escape(title))</text>

        """
        let plotRight = width - right, plotBottom = height - bottom
        for nines in 0...Int(ninesRange) {
            let position = left + (plotRight - left) * Double(nines) / ninesRange
            out += "<line x1=\"\(f(position))\" y1=\"\(f(top))\" x2=\"\(f(position))\" y2=\"\(f(plotBottom))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(f(position))\" y=\"\(f(plotBottom + 18))\" text-anchor=\"middle\">\(Self.percentileLabel(nines: nines))</text>\n"
        }
        let (low, high) = decadeRange
        for decade in Int(low)...Int(high) {
            let position = top + (plotBottom - top) * (1 - (Double(decade) - low) / (high - low))
            out += "<line x1=\"\(f(left))\" y1=\"\(f(position))\" x2=\"\(f(plotRight))\" y2=\"\(f(position))\" stroke=\"#ddd\"/>\n"
            out += "<text x=\"\(f(left - 8))\" y=\"\(f(position + 4))\" text-anchor=\"end\">\(Self.latencyLabel(decade: decade))</text>\n"
        }
        out += "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotRight - left))\" height=\"\(f(plotBottom - top))\" fill=\"none\" stroke=\"#444\"/>\n"
        out += "<text x=\"\(f((left + plotRight) / 2))\" y=\"\(f(height - 16))\" text-anchor=\"middle\">percentile</text>\n"
        out += "<text x=\"18\" y=\"\(f((top + plotBottom) / 2))\" text-anchor=\"middle\" transform=\"rotate(-90 18 \(f((top + plotBottom) / 2)))\">round-trip latency</text>\n"
        for (index, line) in series.enumerated() where !line.points.isEmpty {
            let coordinates = line.points.map { "\(f(x($0.percentile))),\(f(y($0.nanos)))" }.joined(separator: " ")
            let dash = line.dashed ? " stroke-dasharray=\"6 4\"" : ""
            out += "<polyline fill=\"none\" stroke=\"\(line.color)\" stroke-width=\"2\"\(dash) points=\"\(coordinates)\"/>\n"
            let legendY = top + 10 + Double(index) * 20
            out += "<line x1=\"\(f(plotRight + 14))\" y1=\"\(f(legendY))\" x2=\"\(f(plotRight + 44))\" y2=\"\(f(legendY))\" stroke=\"\(line.color)\" stroke-width=\"2\"\(dash)/>\n"
            out += "<text x=\"\(f(plotRight + 50))\" y=\"\(f(legendY + 4))\">\(Self.escape(line.label))</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    /// Writes `path` (SVG) and, when `rsvg-convert` is on PATH, the PNG next to it. Returns the
    /// PNG's path, or why there is none.
    func write(svgPath: String) throws -> Result<String, PNGUnavailable> {
        try svg().write(toFile: svgPath, atomically: true, encoding: .utf8)
        let pngPath = svgPath.hasSuffix(".svg") ? String(svgPath.dropLast(4)) + ".png" : svgPath + ".png"
        guard let converter = Self.findOnPath("rsvg-convert") else {
            return .failure(PNGUnavailable(reason: "rsvg-convert is not installed (Debian: apt-get install librsvg2-bin)"))
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: converter)
        process.arguments = ["-o", pngPath, svgPath]
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            return .failure(PNGUnavailable(reason: "rsvg-convert failed with status \(process.terminationStatus)"))
        }
        return .success(pngPath)
    }

    struct PNGUnavailable: Error { var reason: String }

    static func findOnPath(_ name: String) -> String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"
        for directory in path.split(separator: ":") {
            let candidate = "\(directory)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
