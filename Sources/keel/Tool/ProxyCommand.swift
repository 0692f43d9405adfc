import ArgumentParser
import Foundation
import KeelCore
import KeelPOSIX

/// `keel tool proxy`: a fault-injecting TCP proxy on one link, commanded over a control port.
struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "proxy",
        abstract: "Run a fault-injecting TCP proxy (listen -> target) commanded over a text control port.",
        discussion: """
            Clients connect to --listen; each connection is forwarded to --target. Connect to --control \
            (e.g. `nc 127.0.0.1 C`) and send one command per line: pass, drop, drop a->b, drop b->a, \
            delay MS, cut, status. Each is answered "ok" (status: "ok mode=M connections=N") or \
            "error: ...". a is the connecting side, b the target. Runs until interrupted or for \
            --seconds. Exit status: 0 ended; 1 could not listen (address in use, bad address).
            """
    )

    @Option(help: "Address clients connect to, host:port (port 0: any free port, printed at start).") var listen: String
    @Option(help: "Address each connection is forwarded to, host:port.") var target: String
    @Option(help: "Address of the text control port, host:port.") var control: String?
    @Option(help: "The mode to start in (a command such as \"drop\" or \"delay 50\").") var mode: String = "pass"
    @Option(help: "Stop after this many seconds (default: run until interrupted).") var seconds: Double?

    func validate() throws {
        guard FaultProxyEndpoint(parsing: listen) != nil else { throw ValidationError("--listen must be host:port, got \(listen)") }
        guard FaultProxyEndpoint(parsing: target) != nil else { throw ValidationError("--target must be host:port, got \(target)") }
        if let control, FaultProxyEndpoint(parsing: control) == nil { throw ValidationError("--control must be host:port, got \(control)") }
        do {
            guard case .set = try FaultProxyCommand(parsing: mode) else { throw ValidationError("--mode must be a mode, not \(mode)") }
        } catch let error as FaultProxyCommandError {
            throw ValidationError("--mode: \(error)")
        }
    }

    func run() throws {
        let proxy: FaultProxy
        do {
            proxy = try FaultProxy(listen: FaultProxyEndpoint(parsing: listen)!, target: FaultProxyEndpoint(parsing: target)!,
                                   control: control.flatMap(FaultProxyEndpoint.init(parsing:)))
        } catch {
            ObservabilityText.printError("keel tool proxy: \(error)")
            throw ExitCode(1)
        }
        proxy.apply(try FaultProxyCommand(parsing: mode))
        var line = "proxy \(proxy.listenEndpoint) -> \(proxy.target)"
        if let controlEndpoint = proxy.controlEndpoint { line += ", control \(controlEndpoint)" }
        print(line + ", mode \(mode)")
        fflush(nil)
        let deadline = seconds.map { Date().addingTimeInterval($0) }
        while deadline.map({ Date() < $0 }) ?? true {
            usleep(50_000)
        }
        proxy.stop()
    }
}
