import Foundation
import Histogram
import KeelLocalCluster
import Testing
@testable import keel

@Suite struct OutputFileTests {
    func histogram(_ values: [UInt64]) -> Histogram<UInt64> {
        var histogram = CorrectedLatencyRecorder.makeHistogram()
        for value in values { histogram.record(value) }
        return histogram
    }

    @Test func summaryPercentilesAreOrdered() {
        let summary = PercentileSummary(histogram((1...10_000).map { UInt64($0) * 1_000 }))
        #expect(summary.count == 10_000)
        let columns = summary.columns
        for index in 1..<columns.count { #expect(columns[index] >= columns[index - 1]) }
        #expect(summary.p50Nanos >= 4_990_000 && summary.p50Nanos <= 5_010_000)
        #expect(summary.maxNanos >= 9_990_000)
    }

    @Test func hgrmIsHdrHistogramsPercentileTextInMicroseconds() {
        let text = HgrmFile.text(histogram([50_000, 100_000, 200_000, 2_000_000]))
        let lines = text.split(separator: "\n")
        #expect(lines.first?.contains("Value") == true && lines.first?.contains("Percentile") == true)
        #expect(text.contains("#[Max     ="))
        #expect(text.contains("Total count    =            4"))
        // Values are in µs: the first row is the 50 µs sample, the last the 2 ms one.
        let rows = lines.dropFirst().filter { !$0.hasPrefix("#") }.map { $0.split(separator: " ") }
        #expect(Double(rows.first![0])! > 49.9 && Double(rows.first![0])! < 50.2)
        #expect(Double(rows.last![0])! > 1999 && Double(rows.last![0])! < 2002)
        #expect(rows.last![1] == "1.000000000000")
    }

    @Test func plotPutsNinesEquallySpacedAndHigherLatencyHigherUp() {
        let fast = PercentilePlot.Series(label: "fast", color: "#111", dashed: false, points: [(0, 10_000), (90, 20_000), (99, 40_000), (99.9, 80_000)])
        let slow = PercentilePlot.Series(label: "slow <relay>", color: "#222", dashed: true, points: [(0, 100_000), (99, 1_000_000)])
        let plot = PercentilePlot(title: "t & t", series: [fast, slow])
        #expect(plot.ninesRange == 3)
        let x0 = plot.x(0), x90 = plot.x(90), x99 = plot.x(99), x999 = plot.x(99.9)
        #expect(abs((x90 - x0) - (x99 - x90)) < 0.01 && abs((x99 - x90) - (x999 - x99)) < 0.01)
        #expect(plot.y(1_000_000) < plot.y(100_000) && plot.y(100_000) < plot.y(10_000))
        #expect(plot.decadeRange.low == 1 && plot.decadeRange.high == 3)  // 10 µs .. 1 ms
        let svg = plot.svg()
        #expect(svg.hasPrefix("<svg xmlns=\"http://www.w3.org/2000/svg\""))
        #expect(svg.hasSuffix("</svg>\n"))
        #expect(svg.components(separatedBy: "<polyline").count == 3)
        #expect(svg.contains("stroke-dasharray"))
        #expect(svg.contains("slow &lt;relay&gt;") && svg.contains("t &amp; t"))
        for label in ["0%", "90%", "99%", "99.9%", "10 µs", "100 µs", "1 ms"] { #expect(svg.contains(">\(label)<"), "missing axis label \(label)") }
    }

    @Test func plotSeriesFromAHistogramRisesAndEndsAtTheMax() {
        let series = PercentilePlot.Series(label: "h", color: "#000", dashed: false, histogram: histogram((1...1000).map { UInt64($0) * 10_000 }))
        #expect(series.points.count > 10)
        for index in 1..<series.points.count {
            #expect(series.points[index].percentile >= series.points[index - 1].percentile)
            #expect(series.points[index].nanos >= series.points[index - 1].nanos)
        }
        #expect(series.points.allSatisfy { $0.percentile < 100 })
        #expect(series.points.last!.nanos >= 9_990_000)
    }

    @Test func procFilesAreParsed() {
        let stat = "1234 (keel node (x)) S 1 1234 1234 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 3 0 100 1000000 500 18446744073709551615"
        let ticks = Int64(sysconf(Int32(_SC_CLK_TCK)))
        #expect(ProcessStatistics.cpuNanos(statLine: stat) == 300 * (1_000_000_000 / ticks))
        let parsed = ProcessStatistics.rssAnonBytes(statusText: "Name:\tkeel\nRssAnon:\t    2048 kB\nRssFile:\t 100 kB\n")
        #expect(parsed == Int64(2_097_152), "parsed \(String(describing: parsed))")
        #expect(ProcessStatistics.rssAnonBytes(statusText: "Name:\tkeel\n") == nil)
        #expect((ProcessStatistics.ownCPUNanos() ?? -1) >= 0)
        #expect((ProcessStatistics.rssAnonBytes(pid: getpid()) ?? 0) > 0)
    }
}
