import KeelCore
import KeelSimulation
import Testing

@Suite struct SimulatedClockTests {
    @Test func timeMovesOnlyWhenAdvanced() {
        let clock = SimulatedClock(epochBaseNanos: 1_000_000_000, skewNanos: 0)
        #expect(clock.monotonicNanos() == 0)
        #expect(clock.epochNanos() == 1_000_000_000)
        clock.advance(byNanos: 250)
        #expect(clock.monotonicNanos() == 250 && clock.monotonicNanos() == 250)
        #expect(clock.epochNanos() == 1_000_000_250)
    }

    @Test func skewedClocksSharingTimeDisagreeOnlyAboutTheWallClock() {
        let time = SimulatedTimeSource()
        let ahead = SimulatedClock(timeSource: time, epochBaseNanos: 5_000, skewNanos: 300)
        let behind = SimulatedClock(timeSource: time, epochBaseNanos: 5_000, skewNanos: -200)
        time.advance(byNanos: 1_000)
        #expect(ahead.monotonicNanos() == 1_000 && behind.monotonicNanos() == 1_000)
        #expect(ahead.epochNanos() == 6_300)
        #expect(behind.epochNanos() == 5_800)
        ahead.advance(byNanos: 10)   // moves the shared time
        #expect(behind.monotonicNanos() == 1_010)
        behind.skewNanos = -2_000    // a wall-clock jump back; monotonic time is unaffected
        #expect(behind.epochNanos() == 4_010)
        #expect(behind.monotonicNanos() == 1_010)
        time.advance(toNanos: 2_000)
        #expect(ahead.monotonicNanos() == 2_000)
    }
}
