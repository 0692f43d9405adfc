import KeelCore
import KeelLog
import Testing

/// Replicated mode syncs in the background, batched by bytes and age (`replicatedSyncBytes`,
/// `replicatedSyncDelayNanos`); durable mode syncs at once. Time is what `poll(nowNanos:)` is given.
@Suite struct ReplicatedSyncBatchingTests {
    struct Batching: LogScenario {
        let durability: DurabilityMode

        func run<S: Storage>(_ place: LogPlace, _ makeStorage: () throws -> S) throws {
            var configuration = testConfiguration(durability: durability, method: .pwrite, segmentBytes: 1 << 20)
            configuration.replicatedSyncBytes = 16 << 10
            configuration.replicatedSyncDelayNanos = 10_000_000
            let log = try ReplicatedLog(storage: try makeStorage(), configuration: configuration)
            try log.poll(nowNanos: 0)
            let start = log.durablePosition

            // A few small entries: under both thresholds, so replicated mode starts no sync yet.
            let small = try log.appendTestEntries(0..<4, term: Term(1))
            let settledEarly = try settle(log, nowNanos: 1_000_000, until: small)
            if durability == .durable {
                #expect(settledEarly, "durable mode syncs at once")
                return
            }
            #expect(!settledEarly, "replicated mode waits for the age or byte threshold")
            #expect(log.durablePosition == start)

            // Older than the delay: the sync starts and completes.
            #expect(try settle(log, nowNanos: 11_000_000, until: small), "a sync starts once the oldest unsynced byte is old enough")

            // More than the byte threshold in one batch: synced without waiting for the delay.
            let large = try log.appendTestEntries(100..<160, term: Term(1))
            #expect(large.bytes(since: small) >= 16 << 10)
            #expect(try settle(log, nowNanos: 11_500_000, until: large), "a sync starts once enough bytes are unsynced")
        }

        /// Polls at a fixed time, letting the storage complete what was submitted; true once `position` is durable.
        private func settle(_ log: ReplicatedLog<some Storage>, nowNanos: Int64, until position: LogPosition) throws -> Bool {
            for _ in 0..<200 where log.durablePosition < position {
                try log.poll(nowNanos: nowNanos)
                if log.durablePosition >= position { break }
                try log.storage.waitForCompletions(timeoutNanos: 1_000_000)
            }
            return log.durablePosition >= position
        }
    }

    @Test(arguments: StorageKind.allCases, [DurabilityMode.replicated, .durable])
    func syncsAreBatchedInReplicatedModeOnly(storage: StorageKind, durability: DurabilityMode) throws {
        try LogPlace(storage).run(Batching(durability: durability))
    }
}
