import KeelCore

/// Runs several agents on one thread (DESIGN.md decision 8's shared mode): each duty cycle runs
/// every agent's `doWork` in order and reports the sum of their work.
///
/// `onStart` starts the agents in order and stops at the first that throws; `onClose` closes the
/// agents that started, in reverse order, once.
public final class CompositeAgent: Agent {
    /// The agents, in the order their duty cycles run.
    public let agents: [any Agent]
    public let roleName: String
    private var startedCount = 0

    /// Combines `agents` (at least one); the role name defaults to theirs joined with "+".
    public init(_ agents: [any Agent], roleName: String? = nil) {
        precondition(!agents.isEmpty, "a composite agent needs at least one agent")
        self.agents = agents
        self.roleName = roleName ?? agents.map(\.roleName).joined(separator: "+")
    }

    public func onStart() throws {
        precondition(startedCount == 0, "composite agent started twice")
        for agent in agents {
            try agent.onStart()
            startedCount += 1
        }
    }

    public func doWork(nowNanos: Int64) throws -> Int {
        var workCount = 0
        for agent in agents { workCount += try agent.doWork(nowNanos: nowNanos) }
        return workCount
    }

    public func onClose() {
        for agent in agents.prefix(startedCount).reversed() { agent.onClose() }
        startedCount = 0
    }
}
