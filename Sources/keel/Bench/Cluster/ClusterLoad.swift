import Glibc
import KeelClient
import KeelCore
import KeelIO
import KeelWire

/// Offers an open-loop schedule to a cluster through `sessions` ClusterClients on this thread, with
/// the non-blocking offer/poll API, and records every echo against its scheduled send time.
///
/// Messages go to the sessions in turn; a session with `inFlightPerSession` messages unanswered
/// is skipped, and when all are full the due messages wait (the backlog grows, and their latency,
/// measured from the schedule, shows it). With one session the thread sleeps in ppoll until the
/// next message is due or a response arrives; with several it polls each and naps briefly.
final class ClusterLoad {
    let clients: [ClusterClient<SystemClock>]
    let clock = SystemClock()
    let messageBytes: Int
    let inFlightPerSession: Int
    private let payload: UnsafeMutableRawBufferPointer
    private var inFlight: [Int]
    private var nextSession = 0

    private(set) var schedule: OpenLoopSchedule
    private(set) var recorder: CorrectedLatencyRecorder
    /// Messages of the current schedule offered, and answered.
    private(set) var sent: Int64 = 0
    private(set) var received: Int64 = 0
    /// When the last response (of any schedule) arrived.
    private(set) var lastResponseNanos: Int64 = 0
    /// Echoes whose bytes were not the message sent.
    private(set) var corrupted: Int64 = 0
    /// Per session: how many times its client had opened or reattached its session when its last
    /// response arrived (a failover reattaches it to the new leader, or opens a new one).
    private(set) var attachmentsAtLastResponse: [Int]
    /// Set once an overloaded schedule has ended: the rest of its backlog is not offered.
    var stopsOffering = false

    /// The key-value store's mixed load in place of echo messages (nil: echo).
    let keyValue: KeyValueLoad?

    init(members: [ClusterMemberAddress], sessions: Int, messageBytes: Int, inFlightPerSession: Int, keyValue: KeyValueLoad? = nil) {
        precondition(sessions > 0 && messageBytes >= BenchMessage.minimumBytes && inFlightPerSession > 0, "bad load shape")
        self.messageBytes = messageBytes
        self.inFlightPerSession = inFlightPerSession
        self.keyValue = keyValue
        let frameBytes = RequestFrame.encodedLength(payloadByteCount: max(messageBytes, keyValue?.requestBytesMax ?? 0))
        var configuration = ClusterClientConfiguration(
            members: members, maxOutstandingRequests: inFlightPerSession, outstandingBytesMax: max(4096, (inFlightPerSession + 1) * frameBytes))
        configuration.failoverTimeoutNanos = 30_000_000_000
        let clock = self.clock
        clients = (0..<sessions).map { _ in ClusterClient(configuration: configuration, clock: clock) }
        payload = .allocate(byteCount: messageBytes, alignment: 16)
        payload.initializeMemory(as: UInt8.self, repeating: 0)
        inFlight = Array(repeating: 0, count: sessions)
        attachmentsAtLastResponse = Array(repeating: 0, count: sessions)
        schedule = OpenLoopSchedule(startNanos: 0, ratePerSecond: 1, warmUpNanos: 0, measureNanos: 1)
        recorder = CorrectedLatencyRecorder(schedule: schedule)
    }

    deinit { payload.deallocate() }

    /// Opens every session (each finds the leader itself).
    func connect(timeoutNanos: Int64) throws(ClusterClientError) {
        for client in clients { try client.connect(timeoutNanos: timeoutNanos) }
    }

    func close() {
        for client in clients { client.close() }
    }

    /// Starts a new schedule; responses to older messages still arriving are not counted.
    func begin(_ schedule: OpenLoopSchedule) {
        self.schedule = schedule
        keyValue?.beginSchedule()
        recorder = CorrectedLatencyRecorder(schedule: schedule)
        sent = 0
        received = 0
        stopsOffering = false
    }

    var outstanding: Int { inFlight.reduce(0, +) }
    var isScheduleSent: Bool { sent >= schedule.messageCount }

    /// Messages due by now and not yet answered.
    func backlog(atNanos now: Int64) -> Int64 { max(0, min(schedule.dueCount(atNanos: now), schedule.messageCount) - received) }

    /// One round: offers every message due (as far as the in-flight limits allow), then moves every
    /// session forward; waits up to `maxWaitNanos` when there is nothing to do.
    func step(maxWaitNanos: Int64) throws(ClusterClientError) {
        let now = clock.monotonicNanos()
        let due = schedule.dueCount(atNanos: now)
        var blocked = false
        while sent < due && !stopsOffering {
            guard let session = sessionWithRoom() else { blocked = true; break }
            let result: OfferResult
            if let keyValue {
                result = keyValue.withRequest(sent) { clients[session].offer($0) }
                if case .accepted(let requestID) = result { keyValue.track(session: session, requestID: requestID, index: sent) }
            } else {
                BenchMessage.stamp(payload, scheduledNanos: schedule.scheduledNanos(of: sent), index: sent)
                result = clients[session].offer(UnsafeRawBufferPointer(payload))
            }
            guard case .accepted = result else { blocked = true; break }
            inFlight[session] += 1
            sent += 1
        }
        var wait = maxWaitNanos
        if !blocked && !stopsOffering && sent < schedule.messageCount {
            wait = min(wait, max(0, schedule.scheduledNanos(of: sent) - clock.monotonicNanos()))
        }
        if clients.count == 1 {
            try clients[0].poll(waitingUpToNanos: wait) { response in self.handle(response, session: 0) }
            return
        }
        // Each poll costs the session a ppoll: poll the ones with messages out, and every one at least
        // each 50 ms (keep-alives, failover timers). With 64 sessions at 10,000/s most are idle.
        var work = 0
        let sweep = now - lastSweepNanos >= 50_000_000
        if sweep { lastSweepNanos = now }
        for index in clients.indices where sweep || inFlight[index] > 0 {
            work += try clients[index].poll { response in self.handle(response, session: index) }
        }
        if work == 0 && wait > 0 {
            var pause = timespec(tv_sec: 0, tv_nsec: Int(min(wait, 50_000)))
            nanosleep(&pause, nil)
        }
    }

    /// Moves every session forward without offering (keep-alives go out), at most every 100 ms:
    /// called while the relay runs, so the cluster does not time the idle sessions out.
    func keepSessionsAlive(now: Int64) throws(ClusterClientError) {
        guard now - lastKeepAliveNanos >= 100_000_000 else { return }
        lastKeepAliveNanos = now
        for index in clients.indices {
            try clients[index].poll { response in self.handle(response, session: index) }
        }
    }

    private var lastKeepAliveNanos: Int64 = 0
    private var lastSweepNanos: Int64 = 0

    private func sessionWithRoom() -> Int? {
        for offset in 0..<clients.count {
            let index = (nextSession + offset) % clients.count
            if inFlight[index] < inFlightPerSession {
                nextSession = (index + 1) % clients.count
                return index
            }
        }
        return nil
    }

    private func handle(_ response: ClusterResponse, session: Int) {
        let now = clock.monotonicNanos()
        lastResponseNanos = now
        guard response.requestID > 0 else { return }
        attachmentsAtLastResponse[session] = clients[session].attachments
        inFlight[session] = max(0, inFlight[session] - 1)
        if let keyValue {
            guard let index = keyValue.take(session: session, requestID: response.requestID, response: response.payload),
                index < schedule.messageCount
            else { return }
            received += 1
            recorder.record(scheduledNanos: schedule.scheduledNanos(of: index), receivedNanos: now)
            return
        }
        guard response.payload.count == messageBytes else {
            corrupted += 1
            return
        }
        let scheduled = BenchMessage.scheduledNanos(response.payload)
        let index = BenchMessage.index(response.payload)
        guard index >= 0, index < schedule.messageCount, scheduled == schedule.scheduledNanos(of: index) else { return }
        received += 1
        recorder.record(scheduledNanos: scheduled, receivedNanos: now)
    }
}

extension ClusterClient {
    /// Sessions opened plus reattachments: grows by one with every leader the client has served by.
    var attachments: Int { sessionsOpened + reattachments }
}
