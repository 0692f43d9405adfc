import Foundation
import KeelCore
import Synchronization
import Testing
@testable import KeelClient

/// Runs a FakeMember on its own thread (so an `async send` can await while the member answers).
final class MemberThread: Sendable {
    let port = Atomic<Int>(0)
    let stop = Atomic<Bool>(false)
    let stopped = Atomic<Bool>(false)

    init(_ behaviour: FakeMember.Behaviour) {
        let thread = Thread { [self] in
            guard let member = try? FakeMember(behaviour) else { return }
            port.store(Int(member.port), ordering: .releasing)
            while !stop.load(ordering: .acquiring) {
                member.pump()
                try? member.transport.waitForCompletions(timeoutNanos: 1_000_000)
            }
            stopped.store(true, ordering: .releasing)
        }
        thread.start()
    }

    func waitForPort() -> UInt16 {
        while port.load(ordering: .acquiring) == 0 { usleep(1000) }
        return UInt16(port.load(ordering: .acquiring))
    }

    func shutdown() {
        stop.store(true, ordering: .releasing)
        while !stopped.load(ordering: .acquiring) { usleep(1000) }
    }
}

/// Swift Testing runs synchronous tests on the same small cooperative pool as these async ones; on a
/// 2-core machine a long blocking test elsewhere (the fuzz run, process tests) can hold both threads for
/// many seconds. Leader search and responses get time limits far beyond such a stall, so these tests
/// check the async API, not the scheduler.
func patientConfiguration(port: UInt16) -> ClusterClientConfiguration {
    var configuration = ClusterClientConfiguration(members: [ClusterMemberAddress(id: MemberID(0), host: "127.0.0.1", clientPort: port)])
    configuration.failoverTimeoutNanos = 100_000_000_000
    configuration.responseTimeoutNanos = 100_000_000_000
    return configuration
}

@Suite struct AsyncSendTests {
    @Test(.timeLimit(.minutes(3)))
    func sendReturnsTheResponseToItsOwnRequest() async throws {
        let member = MemberThread(.lead(MemberID(0), Term(1)))
        defer { member.shutdown() }
        let client = ClusterClient(
            configuration: patientConfiguration(port: member.waitForPort()),
            clock: TestClock())
        for index in 0..<50 {
            let answer = try await client.send(payload(index))
            #expect(answer == payload(index))
        }
        #expect(client.sessionsOpened == 1 && client.outstandingCount == 0)
        client.close()
    }

    @Test(.timeLimit(.minutes(3)))
    func sendTimesOutWithAClearError() async throws {
        let member = MemberThread(.silentLead(MemberID(0), Term(1)))
        defer { member.shutdown() }
        let client = ClusterClient(
            configuration: patientConfiguration(port: member.waitForPort()),
            clock: TestClock())
        await #expect(throws: ClusterClientError.self) { _ = try await client.send(payload(1), timeoutNanos: 150_000_000) }
        do {
            _ = try await client.send(payload(2), timeoutNanos: 100_000_000)
        } catch {
            guard case .responseTimedOut(let id, let waited) = error else { Issue.record("unexpected \(error)"); return }
            #expect(id == 2 && waited >= 100_000_000)
        }
    }
}
