import Glibc
import KeelCore
import KeelIO
import Testing

/// Issue 5 §5: "counters visible from a second process". A child process (a Swift Testing exit
/// test: the test binary spawned afresh) creates counters.dat and errors.dat and keeps changing a
/// counter; this process maps the files and watches the values move while the child runs, then
/// sees the child gone and the last values still readable.
@Suite struct CountersSecondProcessTests {
    @Test(.timeLimit(.minutes(1)))
    func anotherProcessSeesCountersChangeLive() async throws {
        let directory = TemporaryDirectory("keel-counters-live")
        let path = directory.path
        async let childFinished = #expect(processExitsWith: .success) { [path = directory.path as String] in
            let counters = try CountersFile.create(directory: path, capacity: 16)
            let errors = try ErrorLogFile.create(directory: path)
            let ticks = counters.writer!.allocate(type: .framesOut, label: "frames out")!
            errors.writer!.record(kind: .transport, message: "child started", epochNanos: SystemClock().epochNanos())
            // Count until told to stop (a file appears), for at most 30 s.
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            for _ in 0..<30_000 {
                if access("\(path)/stop", F_OK) == 0 { break }
                ticks.increment()
                nanosleep(&pause, nil)
            }
            errors.writer!.record(kind: .transport, message: "child stopping", epochNanos: SystemClock().epochNanos())
        }

        let countersPath = "\(path)/\(CountersFile.fileName)"
        let file = try await waitForCounters(at: countersPath)
        let childPID = file.reader.pid
        #expect(childPID != getpid(), "the counters were written by another process")
        #expect(ProcessLiveness.of(pid: childPID) == .running)
        #expect(file.reader.label(at: 0) == "frames out")
        let first = file.reader.value(at: 0)
        try await Task.sleep(for: .milliseconds(200))
        let second = file.reader.value(at: 0)
        #expect(second > first, "the value moved while we watched: \(first) then \(second)")

        close(open("\(path)/stop", O_CREAT | O_WRONLY, 0o644))
        let childResult = await childFinished
        #expect(childResult?.exitStatus == .exitCode(0))
        #expect(ProcessLiveness.of(pid: childPID) == .exited)
        let last = file.reader.value(at: 0)
        #expect(last >= second)
        try await Task.sleep(for: .milliseconds(20))
        #expect(file.reader.value(at: 0) == last, "nothing changes once the writer is gone")

        let errors = try ErrorLogFile.openForReading(path: "\(path)/\(ErrorLogFile.fileName)")
        #expect(errors.reader.pid == childPID)
        #expect(errors.reader.entries().map(\.message) == ["child started", "child stopping"])
    }

    private func waitForCounters(at path: String) async throws -> CountersFile {
        for _ in 0..<3000 {
            if let file = try? CountersFile.openForReading(path: path), file.reader.count > 0 { return file }
            try await Task.sleep(for: .milliseconds(10))
        }
        Issue.record("the child never created \(path)")
        throw ObservabilityFileError.missing(path: path)
    }
}
