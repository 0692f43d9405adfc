import Benchmark
import KeelCore

// Each suite reports wall time and `mallocCountTotal`; steady-state hot paths must stay at 0 allocations.
// Suites for the log append, the Raft core step and the codecs are added with those components.
let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(
        metrics: [.wallClock, .mallocCountTotal, .throughput],
        maxDuration: .seconds(2),
        maxIterations: 1_000_000
    )

    Benchmark("SeededRandom.next ×1000") { benchmark in
        var random = SeededRandom(seed: 1)
        for _ in benchmark.scaledIterations {
            var sum: UInt64 = 0
            for _ in 0..<1000 { sum &+= random.next() }
            blackHole(sum)
        }
    }
}
