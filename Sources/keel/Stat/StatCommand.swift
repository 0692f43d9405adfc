import ArgumentParser
import Foundation
import KeelCore
import KeelIO

/// `keel stat DIR`: shows a node's live counters from DIR/counters.dat (like AeronStat).
struct StatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stat",
        abstract: "Show a node's live counters (DIR/counters.dat), redrawn once a second.",
        discussion: """
            Maps the counters file read-only and redraws every --interval-ms until interrupted, or \
            --count times. --json prints one snapshot and exits. If the node restarts (the file is \
            replaced), the new file is followed. Exit status: 0 shown; 1 no counters file; \
            2 not a readable counters file (magic, version, layout); 3 the node's process is not \
            running (its last values are shown).
            """
    )

    @Argument(help: "The node directory holding counters.dat.") var directory: String
    @Flag(help: "Print one snapshot as JSON and exit.") var json = false
    @Option(help: "Redraw this many times, then exit (default: until interrupted).") var count: Int?
    @Option(name: .customLong("interval-ms"), help: "Milliseconds between redraws.") var intervalMillis: Int = 1000
    @Flag(help: "Do not clear the screen between redraws (for logs and pipes).") var noClear = false

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be at least 1") }
        guard intervalMillis >= 10 else { throw ValidationError("--interval-ms must be at least 10") }
    }

    func run() throws {
        let path = "\(directory)/\(CountersFile.fileName)"
        var file = try open(path)
        if json {
            let snapshot = CountersSnapshotJSON(file: file)
            print(try ObservabilityText.json(snapshot))
            if !snapshot.running { throw ExitCode(ObservabilityText.exitNotRunning) }
            return
        }
        let clearScreen = !noClear && isatty(STDOUT_FILENO) == 1
        var iteration = 0
        while true {
            if file.isReplaced, let replacement = try? CountersFile.openForReading(path: path) { file = replacement }
            let running = ProcessLiveness.of(pid: file.reader.pid) == .running
            var screen = clearScreen ? "\u{1B}[H\u{1B}[2J" : (iteration > 0 ? "\n" : "")
            screen += render(file, running: running)
            print(screen, terminator: "")
            fflush(nil)  // all output streams; `stdout` itself is a global Swift 6 will not touch
            if !running { throw ExitCode(ObservabilityText.exitNotRunning) }
            iteration += 1
            if let count, iteration >= count { return }
            usleep(useconds_t(intervalMillis * 1000))
        }
    }

    private func open(_ path: String) throws -> CountersFile {
        do {
            return try CountersFile.openForReading(path: path)
        } catch {
            throw ExitCode(ObservabilityText.report(error, what: "counters file", directory: directory))
        }
    }

    /// One screen: a header line, then index, label and value of every counter.
    private func render(_ file: CountersFile, running: Bool) -> String {
        let reader = file.reader
        let now = ObservabilityText.timestamp(epochNanos: SystemClock().epochNanos())
        var text = "keel stat \(directory)  pid \(reader.pid) "
        text += running ? "(running)" : "(exited)"
        text += "  started \(ObservabilityText.timestamp(epochNanos: reader.startEpochNanos))  now \(now)\n"
        if !running { text += "not running, last values:\n" }
        let counters = reader.snapshot()
        let labelWidth = max(20, counters.map(\.label.count).max() ?? 0)
        for counter in counters {
            let value = counter.type.describe(value: counter.value)
            text += "\(ObservabilityText.pad(String(counter.index), 4, right: true))  "
            text += "\(ObservabilityText.pad(counter.label, labelWidth))  \(ObservabilityText.pad(value, 20, right: true))"
            text += "  [\(counter.type) \(counter.type.rawValue)]\n"
        }
        if counters.isEmpty { text += "(no counters allocated yet)\n" }
        return text
    }
}

/// The `--json` form of one snapshot.
struct CountersSnapshotJSON: Encodable {
    struct Entry: Encodable {
        var index: Int
        var typeId: Int32
        var type: String
        var label: String
        var value: Int64
        var text: String
    }
    var path: String
    var pid: Int32
    var running: Bool
    var startEpochNanos: Int64
    var readEpochNanos: Int64
    var counters: [Entry]

    init(file: CountersFile) {
        path = file.path
        pid = file.reader.pid
        running = ProcessLiveness.of(pid: pid) == .running
        startEpochNanos = file.reader.startEpochNanos
        readEpochNanos = SystemClock().epochNanos()
        counters = file.reader.snapshot().map {
            Entry(index: $0.index, typeId: $0.type.rawValue, type: "\($0.type)", label: $0.label, value: $0.value,
                  text: $0.type.describe(value: $0.value))
        }
    }
}
