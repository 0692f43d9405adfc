import Testing
@testable import keel

@Suite struct OpenLoopTests {
    @Test func scheduleSpacesMessagesByTheRateAndCountsWarmUpAndWindow() {
        let schedule = OpenLoopSchedule(startNanos: 1_000, ratePerSecond: 10_000, warmUpNanos: 1_000_000, measureNanos: 2_000_000)
        #expect(schedule.scheduledNanos(of: 0) == 1_000)
        #expect(schedule.scheduledNanos(of: 1) == 101_000)
        #expect(schedule.scheduledNanos(of: 25) == 2_501_000)
        #expect(schedule.messageCount == 30)  // 3 ms at 10,000/s
        #expect(schedule.dueCount(atNanos: 0) == 0)
        #expect(schedule.dueCount(atNanos: 1_000) == 1)
        #expect(schedule.dueCount(atNanos: 100_999) == 1)
        #expect(schedule.dueCount(atNanos: 101_000) == 2)
        #expect(schedule.dueCount(atNanos: 1_000_000_000) == 30)
        #expect(schedule.scheduledNanos(of: schedule.messageCount - 1) < schedule.endNanos)
    }

    /// A server that stalls for 100 ms once while the client should send every millisecond: the
    /// corrected recorder charges the stall to every message due during it (latency from the
    /// scheduled time), so about 10% of the measured messages exceed 50 ms; measuring from the
    /// actual send (as a closed-loop client would) shows a single slow message.
    @Test func correctedRecorderChargesAStallToEveryMessageDueDuringIt() {
        let millisecond: Int64 = 1_000_000
        let schedule = OpenLoopSchedule(startNanos: 0, ratePerSecond: 1_000, warmUpNanos: 0, measureNanos: 1_000 * millisecond)
        var corrected = CorrectedLatencyRecorder(schedule: schedule)
        var naive = CorrectedLatencyRecorder.makeHistogram()
        let serviceNanos: Int64 = 100_000
        var serverFreeAt: Int64 = 0
        var clientFreeAt: Int64 = 0
        for index in 0..<schedule.messageCount {
            let scheduled = schedule.scheduledNanos(of: index)
            // The client sends when due, or as soon as the previous answer is back (one in flight).
            let sentAt = max(scheduled, clientFreeAt)
            var start = max(sentAt, serverFreeAt)
            if index == 500 { start += 100 * millisecond }  // the stall
            let answered = start + serviceNanos
            serverFreeAt = answered
            clientFreeAt = answered
            corrected.record(scheduledNanos: scheduled, receivedNanos: answered)
            naive.record(UInt64(answered - sentAt))
        }
        #expect(corrected.measuredCount == 1_000)
        #expect(corrected.histogram.valueAtPercentile(50) < 200_000)
        #expect(corrected.histogram.valueAtPercentile(95) > 40 * UInt64(millisecond))
        #expect(corrected.histogram.max >= 100 * UInt64(millisecond))
        #expect(naive.valueAtPercentile(99) < 200_000, "measured from the actual send, the stall hides")
        #expect(corrected.anomalies == 0)
    }

    @Test func recorderKeepsWarmUpOutOfTheHistogramButCountsArrivalsInTheWindow() {
        let schedule = OpenLoopSchedule(startNanos: 0, ratePerSecond: 1_000, warmUpNanos: 10_000_000, measureNanos: 10_000_000)
        var recorder = CorrectedLatencyRecorder(schedule: schedule)
        recorder.record(scheduledNanos: 1_000_000, receivedNanos: 2_000_000)        // warm-up, arrives in warm-up
        recorder.record(scheduledNanos: 9_000_000, receivedNanos: 10_500_000)       // warm-up, arrives in the window
        recorder.record(scheduledNanos: 12_000_000, receivedNanos: 12_300_000)      // measured
        recorder.record(scheduledNanos: 19_000_000, receivedNanos: 25_000_000)      // measured, arrives after
        recorder.record(scheduledNanos: 30_000_000, receivedNanos: 31_000_000)      // outside the schedule
        recorder.record(scheduledNanos: 15_000_000, receivedNanos: 14_000_000)      // before it was due
        #expect(recorder.measuredCount == 2)
        #expect(recorder.histogram.totalCount == 2)
        #expect(recorder.receivedInWindow == 2)
        #expect(recorder.anomalies == 2)
        #expect(recorder.histogram.max >= 5_990_000 && recorder.histogram.max <= 6_010_000)
        #expect(recorder.achievedRatePerSecond == 200)
    }

    @Test func messageStampRoundTrips() {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 32, alignment: 8)
        defer { buffer.deallocate() }
        BenchMessage.stamp(buffer, scheduledNanos: 123_456_789_012, index: 42)
        #expect(BenchMessage.scheduledNanos(UnsafeRawBufferPointer(buffer)) == 123_456_789_012)
        #expect(BenchMessage.index(UnsafeRawBufferPointer(buffer)) == 42)
    }

    @Test func aPhaseIsHeldOnlyWhenEverythingCameBackAndTheBacklogStayedFlat() {
        #expect(PhaseResult.held(offered: 1000, achieved: 999, sent: 5000, echoed: 5000, scheduled: 5000, backlogMid: 3, backlogEnd: 2))
        #expect(!PhaseResult.held(offered: 1000, achieved: 999, sent: 5000, echoed: 4990, scheduled: 5000, backlogMid: 3, backlogEnd: 2))
        #expect(!PhaseResult.held(offered: 1000, achieved: 900, sent: 5000, echoed: 5000, scheduled: 5000, backlogMid: 3, backlogEnd: 2))
        #expect(!PhaseResult.held(offered: 100_000, achieved: 99_000, sent: 500_000, echoed: 500_000, scheduled: 500_000, backlogMid: 1000, backlogEnd: 9000))
        #expect(!PhaseResult.held(offered: 1000, achieved: 999, sent: 4000, echoed: 4000, scheduled: 5000, backlogMid: 3, backlogEnd: 2))
    }
}
