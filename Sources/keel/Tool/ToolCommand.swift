import ArgumentParser

/// `keel tool`: operator utilities for a node directory and for tests.
struct ToolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tool",
        abstract: "Operator tools: take a snapshot, suspend/resume/shut down the cluster, move leadership, read a node's error log, run a fault-injecting TCP proxy.",
        subcommands: [
            SnapshotCommand.self, SuspendCommand.self, ResumeCommand.self, ShutdownCommand.self, TransferLeadershipCommand.self,
            ErrorsCommand.self, ProxyCommand.self, DemoCountersCommand.self,
        ]
    )
}
