import Foundation
import KeelCore
import KeelIO

/// Shared text helpers for `keel stat` and `keel tool errors`.
enum ObservabilityText {
    /// Exit status when the file is missing or cannot be opened.
    static let exitMissing: Int32 = 1
    /// Exit status when the file is not a readable file of its kind (magic, version, layout).
    static let exitBadFormat: Int32 = 2
    /// Exit status when the writing process is gone (the last values were shown).
    static let exitNotRunning: Int32 = 3

    /// An epoch-nanosecond time as an ISO 8601 UTC timestamp with milliseconds.
    static func timestamp(epochNanos: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: Date(timeIntervalSince1970: Double(epochNanos) / 1e9))
    }

    /// Prints why `path` could not be opened to stderr and returns the exit status to use.
    static func report(_ error: ObservabilityFileError, what: String, directory: String) -> Int32 {
        switch error {
        case .missing(let path):
            printError("keel: no \(what) at \(path): is \(directory) a node directory, and has the node started?")
            return exitMissing
        case .io(let failure):
            printError("keel: cannot open the \(what): \(failure)")
            return exitMissing
        case .format(let path, let failure):
            printError("keel: \(path) is not a readable \(what): \(failure)")
            return exitBadFormat
        }
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    /// Encodes `value` as pretty, key-sorted JSON text.
    static func json<Value: Encodable>(_ value: Value) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// `text` padded with spaces (or cut) to `width` characters.
    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let cut = text.count > width ? String(text.prefix(width)) : text
        let padding = String(repeating: " ", count: width - cut.count)
        return right ? padding + cut : cut + padding
    }
}
