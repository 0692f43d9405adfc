import Glibc
import KeelClient
import KeelCore
import KeelIO
import KeelLocalCluster

/// Where the `keel` executable is: `KEEL_BINARY` if set, else next to the running test bundle
/// (`swift test` builds every product into the same scratch directory), else `.build/debug/keel`.
enum KeelBinary {
    static var path: String? {
        var candidates: [String] = []
        if let fromEnvironment = getenv("KEEL_BINARY") { candidates.append(String(cString: fromEnvironment)) }
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        if count > 0 {
            let exe = String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            // The bundle (or the binary inside it) sits in the scratch directory's debug folder.
            var directory = exe
            while directory.contains(".xctest"), let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) }
            candidates.append(directory + "/keel")
            if let slash = directory.lastIndex(of: "/") { directory = String(directory[..<slash]) }
            candidates.append(directory + "/keel")
        }
        candidates.append(".build/debug/keel")
        return candidates.first { access($0, X_OK) == 0 }
    }

    /// True when the binary exists and has a `node` subcommand.
    static var hasNodeCommand: Bool {
        guard let path else { return false }
        let output = "/tmp/keel-node-help-\(getpid()).txt"
        defer { unlink(output) }
        guard let process = try? ChildProcess.spawn(path, ["node", "--help"], outputPath: output) else { return false }
        guard process.waitForExit(timeoutNanos: 20_000_000_000) == 0, let file = fopen(output, "r") else { return false }
        defer { fclose(file) }
        var text = "", line = [CChar](repeating: 0, count: 1024)
        while fgets(&line, Int32(line.count), file) != nil { text += String(cString: line) }
        // An unknown subcommand before --help prints the root's help: look for the node's own flag.
        return text.contains("--cluster-id")
    }
}

enum HarnessError: Error, CustomStringConvertible {
    case spawn(String)
    case timeout(String)
    var description: String {
        switch self {
        case .spawn(let text), .timeout(let text): text
        }
    }
}

/// The process tests' cluster: the shared `LocalCluster` (module KeelLocalCluster) of the keel binary
/// found by `KeelBinary`.
typealias NodeCluster = LocalCluster

extension LocalCluster {
    convenience init(size: Int = 3, sync: String = "durable", service: String = "echo") throws {
        guard let binary = KeelBinary.path else { throw HarnessError.spawn("no keel binary: set KEEL_BINARY or run swift build --product keel") }
        try self.init(binary: binary, size: size, sync: sync, service: service, clusterID: "test-cluster", directoryPrefix: "/tmp/keel-node-test")
    }

    /// The members' client ports, in member order.
    var clientPorts: [UInt16] { members.map(\.clientPort) }

    /// Adds `arguments` to every member's `keel node` command line.
    func addArgumentsToEveryMember(_ arguments: [String]) {
        for member in members { extraArguments[member.id, default: []] += arguments }
    }
}
