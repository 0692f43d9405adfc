import Glibc
import KeelCore
import KeelIO
import Testing

@Suite struct ObservabilityFileTests {
    @Test func countersWrittenThroughOneMappingAreReadThroughAnother() throws {
        let directory = TemporaryDirectory("keel-counters")
        let file = try CountersFile.create(directory: directory.path, capacity: 8)
        #expect(file.path == "\(directory.path)/counters.dat")
        let writer = try #require(file.writer)
        let term = try #require(writer.allocate(type: .term, label: "term"))
        term.set(11)

        let opened = try CountersFile.openForReading(path: file.path)
        #expect(opened.writer == nil)
        #expect(opened.reader.pid == getpid())
        #expect(opened.reader.capacity == 8)
        #expect(opened.reader.snapshot() == [CounterSnapshot(index: 0, type: .term, label: "term", value: 11)])
        term.increment()
        #expect(opened.reader.value(at: 0) == 12, "the second mapping sees stores through the first at once")
        #expect(!opened.isReplaced)
        // No temporary file is left behind.
        #expect(access("\(directory.path)/.counters.dat.\(getpid()).tmp", F_OK) != 0)
    }

    @Test func recreatingReplacesTheFileAndLeavesOldReadersIntact() throws {
        let directory = TemporaryDirectory("keel-counters")
        let first = try CountersFile.create(directory: directory.path, capacity: 4)
        first.writer!.allocate(type: .term, label: "old term", initialValue: 3)!.set(3)
        let oldReader = try CountersFile.openForReading(path: first.path)

        let second = try CountersFile.create(directory: directory.path, capacity: 4)
        second.writer!.allocate(type: .term, label: "new term", initialValue: 9)!.set(9)
        // The old mapping still reads the old inode (no SIGBUS, no mix), and knows it was replaced.
        #expect(oldReader.reader.label(at: 0) == "old term")
        #expect(oldReader.reader.value(at: 0) == 3)
        #expect(oldReader.isReplaced)
        let newReader = try CountersFile.openForReading(path: first.path)
        #expect(newReader.reader.label(at: 0) == "new term")
        #expect(!newReader.isReplaced)
    }

    @Test func openingSaysPreciselyWhatIsWrong() throws {
        let directory = TemporaryDirectory("keel-counters")
        let missing = "\(directory.path)/counters.dat"
        #expect(throws: ObservabilityFileError.missing(path: missing)) { try CountersFile.openForReading(path: missing) }

        let empty = "\(directory.path)/empty.dat"
        close(open(empty, O_CREAT | O_WRONLY, 0o644))
        #expect(throws: ObservabilityFileError.format(path: empty, .tooSmall(bytes: 0, minimum: CountersLayout.headerBytes))) {
            try CountersFile.openForReading(path: empty)
        }

        // An error log is not a counters file, and the other way round.
        let errors = try ErrorLogFile.create(directory: directory.path, fileBytes: 4096)
        #expect(throws: ObservabilityFileError.format(path: errors.path, .wrongMagic(found: ErrorLogLayout.magic, expected: CountersLayout.magic))) {
            try CountersFile.openForReading(path: errors.path)
        }
        let counters = try CountersFile.create(directory: directory.path, capacity: 4)
        #expect(throws: ObservabilityFileError.format(path: counters.path, .wrongMagic(found: CountersLayout.magic, expected: ErrorLogLayout.magic))) {
            try ErrorLogFile.openForReading(path: counters.path)
        }
    }

    @Test func theErrorLogFileRoundTripsDistinctErrors() throws {
        let directory = TemporaryDirectory("keel-errors")
        let file = try ErrorLogFile.create(directory: directory.path)
        let writer = try #require(file.writer)
        writer.record(kind: .storage, message: "fdatasync failed on log-0.seg: EIO", epochNanos: 10)
        writer.record(kind: .storage, message: "fdatasync failed on log-0.seg: EIO", epochNanos: 20)
        writer.record(kind: .handshake, message: "member 7 is not in the configuration", epochNanos: 30)

        let opened = try ErrorLogFile.openForReading(path: "\(directory.path)/errors.dat")
        #expect(opened.reader.capacityBytes == ErrorLogLayout.defaultFileBytes - ErrorLogLayout.headerBytes)
        #expect(opened.reader.pid == getpid())
        #expect(opened.reader.entries() == [
            ErrorLogEntry(kind: .storage, message: "fdatasync failed on log-0.seg: EIO", count: 2, firstEpochNanos: 10, lastEpochNanos: 20),
            ErrorLogEntry(kind: .handshake, message: "member 7 is not in the configuration", count: 1, firstEpochNanos: 30, lastEpochNanos: 30),
        ])
    }

    @Test func livenessTellsARunningProcessFromAGoneOne() {
        #expect(ProcessLiveness.of(pid: getpid()) == .running)
        #expect(ProcessLiveness.of(pid: 0) == .exited)
        // A pid above the kernel's maximum (4194304) never exists.
        #expect(ProcessLiveness.of(pid: 5_000_000) == .exited)
    }
}
