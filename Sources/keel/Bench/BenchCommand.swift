import ArgumentParser

/// `keel bench …`: benchmarks that measure this machine and Keel, each against a baseline from the same run.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Run a benchmark; every figure is printed beside a baseline measured in the same run.",
        subcommands: [BenchIOCommand.self, BenchRaftCommand.self, BenchTimersCommand.self, BenchLogCommand.self, BenchSnapshotCommand.self, BenchRestartCommand.self, BenchTransportCommand.self, BenchClusterCommand.self, BenchTransportPeerCommand.self, BenchRelayPeerCommand.self]
    )
}
