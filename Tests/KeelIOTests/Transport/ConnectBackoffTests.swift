import KeelCore
import Testing

@Suite struct ConnectBackoffTests {
    @Test func delaysDoubleWithJitterUpToTheCapAndResetOnSuccess() {
        var backoff = ConnectBackoff(initialDelayNanos: 1_000, maxDelayNanos: 8_000, seed: 9)
        var delays: [Int64] = []
        for _ in 0..<6 { delays.append(backoff.failed(nowNanos: 100) - 100) }
        let ceilings: [Int64] = [1_000, 2_000, 4_000, 8_000, 8_000, 8_000]
        for (delay, ceiling) in zip(delays, ceilings) {
            #expect(delay >= ceiling / 2 && delay <= ceiling, "delay \(delay) within [\(ceiling / 2), \(ceiling)]")
        }
        backoff.succeeded()
        #expect(backoff.consecutiveFailures == 0)
        let afterSuccess = backoff.failed(nowNanos: 0)
        #expect(afterSuccess >= 500 && afterSuccess <= 1_000)
    }

    @Test func theSameSeedGivesTheSameDelays() {
        var first = ConnectBackoff(seed: 5), second = ConnectBackoff(seed: 5), other = ConnectBackoff(seed: 6)
        let a = (0..<8).map { _ in first.failed(nowNanos: 0) }
        let b = (0..<8).map { _ in second.failed(nowNanos: 0) }
        let c = (0..<8).map { _ in other.failed(nowNanos: 0) }
        #expect(a == b)
        #expect(a != c)
    }
}
