import ArgumentParser
import KeelCore
import KeelIO
import KeelRuntime

/// `keel bench timers`: the consensus agent's timer structure (`TimerHeap`) at up to a million
/// pending timers — schedule, reschedule, cancel and fire — beside a same-run baseline: the same
/// operations on a plain `Dictionary` of the timers, i.e. the id map alone, without deadline order.
struct BenchTimersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "timers",
        abstract: "Measure timer schedule/reschedule/cancel/fire rates at up to a million pending timers.")

    @Option(help: "Pending timers.")
    var timers: Int = 1_000_000
    @Option(help: "Runs; the median of each figure is reported.")
    var runs: Int = 3

    struct Figures {
        var scheduleNanos = 0.0, rescheduleNanos = 0.0, cancelNanos = 0.0, fireNanos = 0.0
    }

    func run() throws {
        guard timers > 0, runs > 0 else { throw ValidationError("--timers and --runs must be positive") }
        var heapRuns: [Figures] = [], mapRuns: [Figures] = []
        for run in 1...runs {
            let plan = Plan(count: timers, seed: UInt64(run))
            heapRuns.append(measureHeap(plan))
            mapRuns.append(measureMap(plan))
            print("  run \(run): heap \(line(heapRuns.last!)); map \(line(mapRuns.last!))")
        }
        let heap = median(heapRuns), map = median(mapRuns)
        print("keel bench timers — \(timers) pending timers, median of \(runs) runs (ns per operation; rate in M/s):")
        print("  operation      TimerHeap            baseline: Dictionary only")
        for (name, path) in [("schedule", \Figures.scheduleNanos), ("reschedule", \.rescheduleNanos), ("cancel", \.cancelNanos), ("fire (pop due)", \.fireNanos)] {
            print("  \(name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(cell(heap[keyPath: path]))   \(cell(map[keyPath: path]))")
        }
    }

    /// Deadlines and ids decided before timing: random deadlines over an hour, ids shuffled.
    struct Plan {
        var ids: [Int64]
        var deadlines: [Int64]
        var reschedules: [Int64]
        init(count: Int, seed: UInt64) {
            var random = SeededRandom(seed: seed)
            ids = (0..<Int64(count)).map { $0 &* 2_654_435_761 }
            for index in stride(from: count - 1, to: 0, by: -1) { ids.swapAt(index, Int(random.integer(in: 0...Int64(index)))) }
            deadlines = (0..<count).map { _ in random.integer(in: 0...3_600_000_000_000) }
            reschedules = (0..<count).map { _ in random.integer(in: 0...3_600_000_000_000) }
        }
    }

    func measureHeap(_ plan: Plan) -> Figures {
        var figures = Figures()
        var heap = TimerHeap(capacity: plan.ids.count)
        let count = Double(plan.ids.count)
        figures.scheduleNanos = timed(count) {
            for index in plan.ids.indices {
                heap.schedule(PendingTimer(correlationId: plan.ids[index], deadline: ClusterTime(rawValue: plan.deadlines[index]), sequence: Int64(index)))
            }
        }
        figures.rescheduleNanos = timed(count) {
            for index in plan.ids.indices {
                heap.schedule(PendingTimer(correlationId: plan.ids[index], deadline: ClusterTime(rawValue: plan.reschedules[index]), sequence: Int64(plan.ids.count + index)))
            }
        }
        let half = plan.ids.count / 2
        figures.cancelNanos = timed(Double(half)) {
            for index in 0..<half { heap.cancel(correlationId: plan.ids[index]) }
        }
        var fired = 0
        figures.fireNanos = timed(Double(plan.ids.count - half)) {
            while heap.popDue(now: ClusterTime(rawValue: .max)) != nil { fired += 1 }
        }
        precondition(fired == plan.ids.count - half && heap.isEmpty, "the heap lost timers")
        return figures
    }

    func measureMap(_ plan: Plan) -> Figures {
        var figures = Figures()
        var map: [Int64: PendingTimer] = [:]
        map.reserveCapacity(plan.ids.count)
        let count = Double(plan.ids.count)
        figures.scheduleNanos = timed(count) {
            for index in plan.ids.indices {
                map[plan.ids[index]] = PendingTimer(correlationId: plan.ids[index], deadline: ClusterTime(rawValue: plan.deadlines[index]), sequence: Int64(index))
            }
        }
        figures.rescheduleNanos = timed(count) {
            for index in plan.ids.indices {
                map[plan.ids[index]] = PendingTimer(correlationId: plan.ids[index], deadline: ClusterTime(rawValue: plan.reschedules[index]), sequence: Int64(plan.ids.count + index))
            }
        }
        let half = plan.ids.count / 2
        figures.cancelNanos = timed(Double(half)) {
            for index in 0..<half { map.removeValue(forKey: plan.ids[index]) }
        }
        // The map's "fire": remove the rest in id order (no deadline order to keep).
        var fired = 0
        figures.fireNanos = timed(Double(plan.ids.count - half)) {
            for index in half..<plan.ids.count where map.removeValue(forKey: plan.ids[index]) != nil { fired += 1 }
        }
        precondition(fired == plan.ids.count - half && map.isEmpty, "the map lost timers")
        return figures
    }

    func timed(_ operations: Double, _ body: () -> Void) -> Double {
        let clock = SystemClock()
        let start = clock.monotonicNanos()
        body()
        return Double(clock.monotonicNanos() - start) / operations
    }

    func median(_ runs: [Figures]) -> Figures {
        func middle(_ path: KeyPath<Figures, Double>) -> Double { runs.map { $0[keyPath: path] }.sorted()[runs.count / 2] }
        return Figures(scheduleNanos: middle(\.scheduleNanos), rescheduleNanos: middle(\.rescheduleNanos), cancelNanos: middle(\.cancelNanos), fireNanos: middle(\.fireNanos))
    }

    func line(_ figures: Figures) -> String {
        "schedule \(formatFixed(figures.scheduleNanos, decimals: 0)) ns, reschedule \(formatFixed(figures.rescheduleNanos, decimals: 0)) ns, cancel \(formatFixed(figures.cancelNanos, decimals: 0)) ns, fire \(formatFixed(figures.fireNanos, decimals: 0)) ns"
    }

    func cell(_ nanos: Double) -> String {
        "\(formatFixed(nanos, decimals: 0)) ns (\(formatFixed(1_000 / nanos, decimals: 2)) M/s)".padding(toLength: 20, withPad: " ", startingAt: 0)
    }
}
