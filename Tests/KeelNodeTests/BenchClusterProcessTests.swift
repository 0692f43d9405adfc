import Foundation
import KeelLocalCluster
import Testing

/// `keel bench cluster` end to end, briefly: a local cluster, the relay baseline, one rate, a
/// one-step throughput search and one failover; the JSON it writes must hold sane figures.
@Suite(.serialized, .enabled(if: KeelBinary.hasNodeCommand, "needs the keel binary with its node command (swift build --product keel)"))
struct BenchClusterProcessTests {
    @Test func aShortRunWritesSaneFiguresWithItsBaseline() throws {
        let binary = try #require(KeelBinary.path)
        let folder = try LocalFiles.makeTemporaryDirectory(prefix: "/tmp/keel-bench-cluster-test")
        defer { LocalFiles.removeTree(folder) }
        let json = "\(folder)/result.json"
        let process = try ChildProcess.spawn(binary, [
            "bench", "cluster", "--rates", "500", "--duration", "2", "--warm-up", "0.5", "--sync", "replicated",
            "--search-start", "1000", "--sustain-seconds", "1", "--search-steps", "1", "--failovers", "1",
            "--out", "\(folder)/out", "--json", json,
        ], outputPath: "\(folder)/output.txt")
        let status = process.waitForExit(timeoutNanos: 120_000_000_000)
        if status == nil { process.kill9() }
        let output = (try? String(contentsOfFile: "\(folder)/output.txt", encoding: .utf8)) ?? ""
        try #require(status == 0, "keel bench cluster failed (status \(String(describing: status))):\n\(output.suffix(3000))")

        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: json))) as? [String: Any])
        let rates = try #require(report["rates"] as? [[String: Any]])
        #expect(rates.count == 1)
        for rate in rates {
            for system in ["cluster", "relay"] {
                let phase = try #require(rate[system] as? [String: Any], "no \(system) phase (the baseline must be in the same run)")
                let latency = try #require(phase["latency"] as? [String: Any])
                let keys = ["p50Nanos", "p90Nanos", "p99Nanos", "p999Nanos", "p9999Nanos", "maxNanos"]
                let values = keys.compactMap { (latency[$0] as? NSNumber)?.int64Value }
                #expect(values.count == keys.count)
                #expect(values.first.map { $0 > 0 } == true, "\(system): p50 not positive")
                for index in 1..<values.count { #expect(values[index] >= values[index - 1], "\(system): \(keys[index]) below \(keys[index - 1])") }
                #expect(((latency["count"] as? NSNumber)?.int64Value ?? 0) >= 900, "\(system): about 1,000 measured echoes expected")
                let offered = try #require((phase["offeredPerSecond"] as? NSNumber)?.doubleValue)
                let achieved = try #require((phase["achievedPerSecond"] as? NSNumber)?.doubleValue)
                #expect(offered == 500)
                #expect(achieved > 450 && achieved < 550, "\(system): achieved \(achieved)/s for 500/s offered")
                #expect((phase["unanswered"] as? NSNumber)?.int64Value == 0)
                let cpu = try #require(phase["cpu"] as? [[String: Any]])
                #expect(cpu.contains { $0["name"] as? String == "client" })
                let hgrm = try #require(phase["hgrmFile"] as? String)
                #expect(FileManager.default.fileExists(atPath: "\(folder)/out/\(hgrm)"))
            }
            let ratios = try #require(rate["latencyRatios"] as? [NSNumber])
            #expect(ratios.count == 6 && ratios.allSatisfy { $0.doubleValue > 0 })
        }
        let cpu = try #require((rates[0]["cluster"] as? [String: Any])?["cpu"] as? [[String: Any]])
        #expect(cpu.filter { ($0["name"] as? String)?.hasPrefix("node ") == true }.count == 3)
        let memory = try #require(report["rssAnonMaxBytes"] as? [String: NSNumber])
        #expect(memory.count == 3 && memory.values.allSatisfy { $0.int64Value > 0 })
        let elected = try #require((report["leaderElectedAfterLaunchNanos"] as? NSNumber)?.int64Value)
        #expect(elected > 0 && elected < 30_000_000_000)
        let searches = try #require(report["throughput"] as? [[String: Any]])
        #expect(searches.map { $0["system"] as? String } == ["cluster", "relay"])
        let failover = try #require(report["failover"] as? [String: Any])
        let times = try #require(failover["timesNanos"] as? [NSNumber])
        #expect(times.count == 1 && times[0].int64Value > 0 && times[0].int64Value < 60_000_000_000)
        let svg = try String(contentsOfFile: "\(folder)/out/percentiles.svg", encoding: .utf8)
        #expect(svg.components(separatedBy: "<polyline").count == 3, "one line per rate for the cluster and the relay")
        #expect(output.contains("cluster/relay"))
        #expect(output.contains("cleaned up"))
    }
}
