import ArgumentParser

/// `keel tool`: operator utilities for a node directory and for tests.
struct ToolCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tool",
        abstract: "Operator tools: read a node's error log, run a fault-injecting TCP proxy.",
        subcommands: [ErrorsCommand.self, ProxyCommand.self, DemoCountersCommand.self]
    )
}
