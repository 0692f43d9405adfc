import ArgumentParser
import Glibc
import KeelClient
import KeelCore
import KeelIO
import KeelWire

/// What `keel tool suspend / resume / shutdown / transfer-leadership` share: where the cluster is,
/// who asks, how long to wait, and how to report.
struct ClusterCommandOptions: ParsableArguments {
    @Option(name: .customLong("members"), help: "Client addresses: 0=127.0.0.1:9020,1=…, or the node form 0=HOST:MEMBER_PORT:CLIENT_PORT,…")
    var members: String

    @Option(name: .customLong("credentials"), help: "NAME:SECRET, as the nodes' --secret-file and --admin expect.")
    var credentials: String?

    @Option(name: .customLong("timeout-ms"), help: "Give up after this long.")
    var timeoutMillis: Int64 = 15_000

    @Flag(name: .customLong("json"), help: "Print one JSON object instead of a line of text.")
    var json = false
}

/// The exit statuses of the cluster-wide commands (docs/operations.md).
enum ControlExit {
    static let done: Int32 = 0
    /// The cluster could not be reached, or did not answer in time.
    static let unreachable: Int32 = 1
    static let badArguments: Int32 = 2
    /// The leader refused: not authorised, failed, unsupported.
    static let refused: Int32 = 3
    /// Accepted, but not completed: the transfer's target did not take over; nodes still running.
    static let notCompleted: Int32 = 4
}

/// One command's outcome, printed as a line or as JSON.
struct ControlOutcome: Encodable {
    var command: String
    var outcome: String
    var exitCode: Int32
    var leader: Int32?
    var term: Int64?
    var message: String

    func report(json: Bool) throws {
        if json {
            print(try ObservabilityText.json(self))
        } else if exitCode == ControlExit.done {
            print("\(leader.map { "leader \($0)" } ?? "cluster"): \(message)")
        } else {
            printToStandardError("keel tool \(command): \(message)")
        }
        if exitCode != ControlExit.done { throw ExitCode(exitCode) }
    }
}

/// An admin request to the leader over a client session (`ClusterClient`: finds the leader,
/// follows redirects and failovers), and what came back.
final class AdminExchange {
    let client: ClusterClient<SystemClock>
    let clock = SystemClock()
    let deadlineNanos: Int64
    let command: String
    private var sent = false

    init(command: String, options: ClusterCommandOptions) throws {
        self.command = command
        let addresses: [ClusterMemberAddress]
        do { addresses = try SnapshotCommand.parseMembers(options.members) } catch {
            printToStandardError("keel tool \(command): \(error)")
            throw ExitCode(ControlExit.badArguments)
        }
        guard options.timeoutMillis > 0 else {
            printToStandardError("keel tool \(command): --timeout-ms must be positive")
            throw ExitCode(ControlExit.badArguments)
        }
        var configuration = ClusterClientConfiguration(members: addresses, credentials: Array((options.credentials ?? "").utf8))
        configuration.failoverTimeoutNanos = options.timeoutMillis * 1_000_000
        client = ClusterClient(configuration: configuration, clock: clock)
        deadlineNanos = clock.monotonicNanos() + options.timeoutMillis * 1_000_000
    }

    deinit { client.close() }

    var timedOut: Bool { clock.monotonicNanos() >= deadlineNanos }
    var leader: Int32? { client.leaderMemberID?.rawValue }
    var term: Int64? { client.leaderMemberID == nil ? nil : client.leaderTerm.rawValue }

    /// Polls once (up to 10 ms); sends the request as soon as a session is open. A client failure
    /// is returned as the outcome.
    func step(_ type: AdminRequestType, body: [UInt8] = []) -> ControlOutcome? {
        do { _ = try client.poll(waitingUpToNanos: 10_000_000) { _ in } } catch {
            return outcome("unreachable", ControlExit.unreachable, "\(error)")
        }
        if !sent && client.state == .open { sent = client.sendAdmin(type, correlationID: 1, body: body) }
        return nil
    }

    /// The leader's answer, once it came.
    var answer: AdminAnswer? { client.adminResponses.first }

    /// The outcome of an answer other than ok.
    func refusal(_ answer: AdminAnswer) -> ControlOutcome {
        outcome("refused", ControlExit.refused, "the leader answered \(answer.status)\(answer.text.isEmpty ? "" : ": \(answer.text)")")
    }

    func outcome(_ outcome: String, _ exitCode: Int32, _ message: String) -> ControlOutcome {
        ControlOutcome(command: command, outcome: outcome, exitCode: exitCode, leader: leader, term: term, message: message)
    }

    func noAnswer(_ timeoutMillis: Int64) -> ControlOutcome {
        outcome("unreachable", ControlExit.unreachable, "no answer within \(timeoutMillis) ms (client \(client.state))")
    }
}

/// Sends `type` and waits for the leader's answer (it answers once the entry is committed).
private func runAction(_ command: String, _ type: AdminRequestType, options: ClusterCommandOptions) throws -> (AdminExchange, ControlOutcome) {
    let exchange = try AdminExchange(command: command, options: options)
    while !exchange.timedOut {
        if let failed = exchange.step(type) { return (exchange, failed) }
        if let answer = exchange.answer {
            guard answer.status == .ok else { return (exchange, exchange.refusal(answer)) }
            return (exchange, exchange.outcome("ok", ControlExit.done, answer.text))
        }
    }
    return (exchange, exchange.noAnswer(options.timeoutMillis))
}

/// `keel tool suspend`.
struct SuspendCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suspend",
        abstract: "Stop the cluster taking client requests (through a log entry) until `keel tool resume`.",
        discussion: """
            The leader appends a suspend entry and answers once it is committed. From then on every \
            client request is refused with the retryable status `cluster suspended` (ClusterClient sends \
            it again by itself, same sequence, until the cluster resumes); sessions, keep-alives, timers \
            and snapshots carry on. The state is replicated: it survives leader changes and restarts. \
            Exit status: 0 suspended; 1 the cluster could not be reached or did not answer in time; 2 bad \
            arguments; 3 refused (not authorised, …).
            """
    )

    @OptionGroup var options: ClusterCommandOptions

    func run() throws {
        try runAction("suspend", .suspend, options: options).1.report(json: options.json)
    }
}

/// `keel tool resume`.
struct ResumeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "resume",
        abstract: "Let a suspended cluster take client requests again (through a log entry).",
        discussion: """
            The leader appends a resume entry and answers once it is committed. Exit status: 0 \
            serving; 1 the cluster could not be reached or did not answer in time; 2 bad arguments; \
            3 refused.
            """
    )

    @OptionGroup var options: ClusterCommandOptions

    func run() throws {
        try runAction("resume", .resume, options: options).1.report(json: options.json)
    }
}

/// `keel tool shutdown`.
struct ShutdownCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shutdown",
        abstract: "Shut the whole cluster down in order: a final snapshot on every member, then exit.",
        discussion: """
            The leader appends a shutdown entry, takes no more client requests or sessions, and \
            answers once the entry is committed. Every member, on applying it, writes a snapshot at \
            that position, calls the service's onTerminate and exits with status 0 (the leader waits, \
            at most 10 s, until every member holds the entry). A restart loads those snapshots with \
            nothing to replay. With --wait-dir DIR (once per local node directory) the tool also \
            waits until those nodes' processes are gone. Exit status: 0 done; 1 the cluster could \
            not be reached or did not answer in time; 2 bad arguments; 3 refused; 4 a node named by \
            --wait-dir still ran at the timeout.
            """
    )

    @OptionGroup var options: ClusterCommandOptions

    @Option(name: .customLong("wait-dir"), help: "A local node directory whose process to wait for (repeatable).")
    var waitDirectories: [String] = []

    func run() throws {
        var pids: [(String, Int32)] = []
        for directory in waitDirectories {
            guard let file = try? CountersFile.openForReading(path: "\(directory)/\(CountersFile.fileName)") else {
                printToStandardError("keel tool shutdown: no counters file in \(directory): is it a node directory, and has the node started?")
                throw ExitCode(ControlExit.badArguments)
            }
            pids.append((directory, file.reader.pid))
        }
        let (exchange, outcome) = try runAction("shutdown", .shutdown, options: options)
        guard outcome.exitCode == ControlExit.done, !pids.isEmpty else { return try outcome.report(json: options.json) }
        exchange.client.close()
        var running = pids
        while !running.isEmpty && !exchange.timedOut {
            running.removeAll { ProcessLiveness.of(pid: $0.1) == .exited }
            if !running.isEmpty { usleep(20_000) }
        }
        guard running.isEmpty else {
            let names = running.map { "\($0.0) (pid \($0.1))" }.joined(separator: ", ")
            return try exchange.outcome("not-completed", ControlExit.notCompleted, "\(outcome.message); still running at the timeout: \(names)")
                .report(json: options.json)
        }
        var done = outcome
        done.message += "; the \(pids.count) local node\(pids.count == 1 ? "" : "s") exited"
        try done.report(json: options.json)
    }
}

/// `keel tool transfer-leadership --to N`.
struct TransferLeadershipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "transfer-leadership",
        abstract: "Hand leadership to member N without an election timeout (planned maintenance).",
        discussion: """
            The leader pauses client ingress (requests wait in the sockets and its batch), brings N up \
            to date and tells it to campaign at once (Raft's TimeoutNow); clients follow the new leader \
            and re-send what was not answered. The tool waits until N leads. Exit status: 0 N leads; \
            1 the cluster could not be reached, or nothing settled in time; 2 bad arguments; 3 refused \
            (not authorised, N not a member, a transfer already under way, …); 4 the transfer did not \
            complete (N did not catch up within an election timeout, or another member leads).
            """
    )

    @OptionGroup var options: ClusterCommandOptions

    @Option(name: .customLong("to"), help: "The member to hand leadership to.")
    var target: Int32

    func run() throws {
        guard target >= 0 else {
            printToStandardError("keel tool transfer-leadership: --to must be a member id (≥ 0)")
            throw ExitCode(ControlExit.badArguments)
        }
        let exchange = try AdminExchange(command: "transfer-leadership", options: options)
        let body = withUnsafeBytes(of: target.littleEndian) { Array($0) }
        var startTerm: Int64?
        var outcome: ControlOutcome?
        while outcome == nil && !exchange.timedOut {
            if let failed = exchange.step(.transferLeadership, body: body) {
                outcome = failed
                break
            }
            if startTerm == nil, exchange.client.state == .open { startTerm = exchange.client.leaderTerm.rawValue }
            if let answer = exchange.answer, answer.status != .ok {
                outcome = answer.status == .failed && answer.text.contains("did not take over")
                    ? exchange.outcome("not-completed", ControlExit.notCompleted, answer.text) : exchange.refusal(answer)
                break
            }
            // Done when the client's session is open on N; another leader in a later term means it failed.
            guard exchange.client.state == .open, let leader = exchange.leader, let startTerm else { continue }
            if leader == target {
                let text = exchange.answer?.text ?? "member \(target) leads in term \(exchange.client.leaderTerm.rawValue)"
                outcome = exchange.outcome("ok", ControlExit.done, text)
            } else if exchange.client.leaderTerm.rawValue > startTerm {
                outcome = exchange.outcome("not-completed", ControlExit.notCompleted, "member \(leader) leads (term \(exchange.client.leaderTerm.rawValue)), not \(target)")
            }
        }
        try (outcome ?? exchange.noAnswer(options.timeoutMillis)).report(json: options.json)
    }
}
