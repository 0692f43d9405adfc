import ArgumentParser
import Foundation
import KeelCore
import KeelIO

/// `keel tool errors DIR`: prints a node's distinct-error log (DIR/errors.dat).
struct ErrorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "errors",
        abstract: "Print a node's error log (DIR/errors.dat): distinct errors with count, first and last time.",
        discussion: """
            Exit status: 0 printed (also when the log is empty or its process has exited); 1 no error \
            log; 2 not a readable error log (magic, version, layout).
            """
    )

    @Argument(help: "The node directory holding errors.dat.") var directory: String
    @Flag(help: "Print JSON instead of a table.") var json = false

    func run() throws {
        let path = "\(directory)/\(ErrorLogFile.fileName)"
        let file: ErrorLogFile
        do {
            file = try ErrorLogFile.openForReading(path: path)
        } catch {
            throw ExitCode(ObservabilityText.report(error, what: "error log", directory: directory))
        }
        let reader = file.reader
        let entries = reader.entries()
        let running = ProcessLiveness.of(pid: reader.pid) == .running
        if json {
            print(try ObservabilityText.json(ErrorLogJSON(path: path, reader: reader, running: running, entries: entries)))
            return
        }
        print("\(path)  pid \(reader.pid) \(running ? "(running)" : "(exited)")  started \(ObservabilityText.timestamp(epochNanos: reader.startEpochNanos))")
        print("\(entries.count) distinct errors, \(reader.droppedCount) dropped (log full), \(reader.usedBytes) of \(reader.capacityBytes) bytes used")
        guard !entries.isEmpty else { return }
        print("\(ObservabilityText.pad("count", 8, right: true))  \(ObservabilityText.pad("first", 24))  \(ObservabilityText.pad("last", 24))  \(ObservabilityText.pad("kind", 13))  message")
        for entry in entries {
            var line = ObservabilityText.pad(String(entry.count), 8, right: true) + "  "
            line += ObservabilityText.pad(ObservabilityText.timestamp(epochNanos: entry.firstEpochNanos), 24) + "  "
            line += ObservabilityText.pad(ObservabilityText.timestamp(epochNanos: entry.lastEpochNanos), 24) + "  "
            line += ObservabilityText.pad("\(entry.kind)", 13) + "  " + entry.message
            print(line)
        }
    }
}

/// The `--json` form of an error log.
struct ErrorLogJSON: Encodable {
    struct Entry: Encodable {
        var kindId: Int32
        var kind: String
        var count: Int64
        var firstEpochNanos: Int64
        var lastEpochNanos: Int64
        var message: String
    }
    var path: String
    var pid: Int32
    var running: Bool
    var startEpochNanos: Int64
    var droppedCount: Int64
    var errors: [Entry]

    init(path: String, reader: ErrorLogReader, running: Bool, entries: [ErrorLogEntry]) {
        self.path = path
        pid = reader.pid
        self.running = running
        startEpochNanos = reader.startEpochNanos
        droppedCount = reader.droppedCount
        errors = entries.map {
            Entry(kindId: $0.kind.rawValue, kind: "\($0.kind)", count: $0.count, firstEpochNanos: $0.firstEpochNanos,
                  lastEpochNanos: $0.lastEpochNanos, message: $0.message)
        }
    }
}
