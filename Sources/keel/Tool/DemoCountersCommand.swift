import ArgumentParser
import Foundation
import KeelCore
import KeelIO
import KeelWire

/// `keel tool demo-counters DIR` (hidden, for tests and demos until `keel node` exists): creates
/// DIR/counters.dat and DIR/errors.dat with the node counter set and changes them like a node would,
/// so `keel stat` and `keel tool errors` can be shown against a live process.
struct DemoCountersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-counters",
        abstract: "Write changing node counters and errors into DIR (a stand-in for a running node).",
        shouldDisplay: false
    )

    @Argument(help: "The directory to write counters.dat and errors.dat into (created if missing).") var directory: String
    @Option(help: "Keep writing for this many seconds, then exit.") var seconds: Double = 60

    func run() throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let reasons = WireRejectionReason.allCases.map(\.description)
        let counters = try CountersFile.create(directory: directory)
        let errors = try ErrorLogFile.create(directory: directory)
        let node = NodeCounters(writer: counters.writer!, rejectionReasons: reasons)
        let log = errors.writer!
        let clock = SystemClock()
        let deadline = clock.monotonicNanos() + Int64(seconds * 1e9)
        var random = SeededRandom(seed: 5)
        var step: Int64 = 0
        node.connections.set(2)
        while clock.monotonicNanos() < deadline {
            step += 1
            // Every 5 s an election: pre-vote, vote, then leadership.
            switch step % 500 {
            case 0: node.role.set(RoleCounterValue.preCandidate.rawValue); node.electionState.set(ElectionStateCounterValue.preVote.rawValue)
            case 10: node.term.increment(); node.role.set(RoleCounterValue.candidate.rawValue); node.electionState.set(ElectionStateCounterValue.vote.rawValue)
            case 20: node.role.set(RoleCounterValue.leader.rawValue); node.electionState.set(ElectionStateCounterValue.settled.rawValue)
            default: break
            }
            let frames = random.integer(in: 1...64)
            node.framesOut.increment(by: frames)
            node.bytesOut.increment(by: frames * 96)
            node.framesIn.increment(by: frames / 2)
            node.bytesIn.increment(by: frames * 40)
            node.appendPosition.increment(by: frames * 96)
            node.durablePosition.set(node.appendPosition.get() - 96)
            node.commitPosition.set(node.durablePosition.get())
            if random.chance(0.01) {
                node.rejectedFrames(reasonCode: Int(WireRejectionReason.checksumMismatch.rawValue)).increment()
                node.errors(kind: .protocolViolation).increment()
                log.record(kind: .protocolViolation, message: "bad frame from 127.0.0.1:\(40_000 + random.integer(in: 0...2)): checksum mismatch",
                           epochNanos: clock.epochNanos())
            }
            usleep(10_000)
        }
    }
}
