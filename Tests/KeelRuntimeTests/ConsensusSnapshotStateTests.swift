import KeelCore
import KeelRuntime
import KeelService
import KeelSimulation
import Testing

@Suite("The consensus section of a snapshot")
struct ConsensusSnapshotStateTests {
    func state(suspended: Bool) -> ConsensusSnapshotState {
        var sessions = SessionTable(limits: ResponseWindowLimits())
        _ = sessions.open(id: 7, secret: 99, principal: Array("ops".utf8), timestamp: ClusterTime(rawValue: 5))
        return ConsensusSnapshotState(
            position: LogPosition(4096), term: Term(3), timestamp: ClusterTime(rawValue: 1_000), clusterID: 42, members: [MemberID(0), MemberID(1), MemberID(2)],
            timers: ReplicatedTimers(), sessions: sessions, suspended: suspended)
    }

    func bytes(_ state: ConsensusSnapshotState) throws -> [UInt8] {
        let writer = InMemorySnapshotWriter()
        try state.write(to: writer)
        return writer.bytes
    }

    @Test("format 2 keeps the suspended flag, set or not, with everything else")
    func roundTripsSuspended() throws {
        for suspended in [false, true] {
            let original = state(suspended: suspended)
            let read = try ConsensusSnapshotState.read(from: InMemorySnapshotReader(bytes: try bytes(original)), responseWindow: ResponseWindowLimits())
            #expect(read == original)
            #expect(read.suspended == suspended)
        }
    }

    @Test("a format 1 section (no flags word) still reads, not suspended; unknown flag bits are refused")
    func readsFormatOneAndRefusesUnknownFlags() throws {
        var current = try bytes(state(suspended: true))
        // Format 1: version 1 at bytes 8..<16 and no flags word after the three member ids (bytes 56..<80).
        var older = current
        older.replaceSubrange(8..<16, with: withUnsafeBytes(of: Int64(1).littleEndian) { Array($0) })
        older.removeSubrange(80..<88)
        let read = try ConsensusSnapshotState.read(from: InMemorySnapshotReader(bytes: older), responseWindow: ResponseWindowLimits())
        #expect(read == state(suspended: false))

        current.replaceSubrange(80..<88, with: withUnsafeBytes(of: Int64(6).littleEndian) { Array($0) })
        #expect(throws: SnapshotFormatError.self) {
            _ = try ConsensusSnapshotState.read(from: InMemorySnapshotReader(bytes: current), responseWindow: ResponseWindowLimits())
        }
    }
}
