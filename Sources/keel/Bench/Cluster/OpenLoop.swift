import Histogram

/// When each message of an open-loop run is due: message `index` at `startNanos + index / rate`,
/// whatever happened to the messages before it (the load does not wait for the system under test).
struct OpenLoopSchedule: Codable, Equatable {
    var startNanos: Int64
    var ratePerSecond: Double
    /// Messages due before this are warm-up; measured ones are due in `[measureStartNanos, endNanos)`.
    var measureStartNanos: Int64
    /// No message is due at or after this.
    var endNanos: Int64

    init(startNanos: Int64, ratePerSecond: Double, warmUpNanos: Int64, measureNanos: Int64) {
        precondition(ratePerSecond > 0 && warmUpNanos >= 0 && measureNanos > 0, "a schedule needs a rate and a window")
        self.startNanos = startNanos
        self.ratePerSecond = ratePerSecond
        measureStartNanos = startNanos + warmUpNanos
        endNanos = measureStartNanos + measureNanos
    }

    /// The scheduled send time of message `index`.
    func scheduledNanos(of index: Int64) -> Int64 {
        startNanos + Int64((Double(index) * 1e9 / ratePerSecond).rounded(.down))
    }

    /// The number of messages the whole schedule holds (warm-up and measured).
    var messageCount: Int64 {
        Int64((Double(endNanos - startNanos) * ratePerSecond / 1e9).rounded(.up))
    }

    /// How many messages are due at `nowNanos` (all of them once the schedule has ended).
    func dueCount(atNanos nowNanos: Int64) -> Int64 {
        guard nowNanos >= startNanos else { return 0 }
        let due = Int64((Double(nowNanos - startNanos) * ratePerSecond / 1e9).rounded(.down)) + 1
        return min(due, messageCount)
    }

    var measureNanos: Int64 { endNanos - measureStartNanos }
}

/// Round-trip latencies corrected for coordinated omission: each is measured from the message's
/// *scheduled* send time, not from when it actually went out, so a stall that delays the sender
/// counts against every message that should have been sent during it. Only messages scheduled in
/// the measured window are recorded.
struct CorrectedLatencyRecorder {
    let schedule: OpenLoopSchedule
    private(set) var histogram = CorrectedLatencyRecorder.makeHistogram()
    /// Responses to measured messages.
    private(set) var measuredCount: Int64 = 0
    /// Responses (any message) that arrived inside the measured window: the achieved rate.
    private(set) var receivedInWindow: Int64 = 0
    /// Responses whose scheduled time lies outside the schedule, or that arrived before it: bad data.
    private(set) var anomalies: Int64 = 0

    init(schedule: OpenLoopSchedule) { self.schedule = schedule }

    /// 1 µs .. 100 s at three significant digits.
    static func makeHistogram() -> Histogram<UInt64> {
        Histogram<UInt64>(lowestDiscernibleValue: 1_000, highestTrackableValue: 100_000_000_000, numberOfSignificantValueDigits: .three)
    }

    mutating func record(scheduledNanos: Int64, receivedNanos: Int64) {
        guard scheduledNanos >= schedule.startNanos, scheduledNanos < schedule.endNanos, receivedNanos >= scheduledNanos else {
            anomalies += 1
            return
        }
        if receivedNanos >= schedule.measureStartNanos && receivedNanos < schedule.endNanos { receivedInWindow += 1 }
        guard scheduledNanos >= schedule.measureStartNanos else { return }
        measuredCount += 1
        histogram.record(UInt64(max(receivedNanos - scheduledNanos, 1_000)))
    }

    /// Responses per second inside the measured window.
    var achievedRatePerSecond: Double { Double(receivedInWindow) * 1e9 / Double(schedule.measureNanos) }
}

/// The benchmark message: the scheduled send time and the message index, then zeros up to the
/// chosen size. Both the cluster's echo and the relay return it unchanged.
/// ```
///  0                  8                  16            size
/// +------------------+------------------+-- zeros --+
/// | scheduled (ns)   | index            |           |
/// +------------------+------------------+-----------+
/// ```
enum BenchMessage {
    static let minimumBytes = 16

    static func stamp(_ buffer: UnsafeMutableRawBufferPointer, scheduledNanos: Int64, index: Int64) {
        buffer.storeBytes(of: scheduledNanos.littleEndian, toByteOffset: 0, as: Int64.self)
        buffer.storeBytes(of: index.littleEndian, toByteOffset: 8, as: Int64.self)
    }

    static func scheduledNanos(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: Int64.self))
    }

    static func index(_ bytes: UnsafeRawBufferPointer) -> Int64 {
        Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8, as: Int64.self))
    }
}
