import ArgumentParser

@main
struct KeelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "keel",
        abstract: "Keel: a clustered-service runtime for Swift on Linux.",
        subcommands: [BenchCommand.self, SimCommand.self, StatCommand.self, ToolCommand.self, NodeCommand.self, DemoCommand.self]
    )
}
