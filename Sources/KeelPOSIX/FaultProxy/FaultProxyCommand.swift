/// An IPv4 address and port, written "host:port" ("127.0.0.1:9010"; "localhost" means 127.0.0.1).
public struct FaultProxyEndpoint: Hashable, Sendable, CustomStringConvertible {
    /// A dotted IPv4 address.
    public var host: String
    /// The TCP port (0 when listening: the kernel picks one).
    public var port: UInt16

    public init(host: String, port: UInt16) {
        self.host = host == "localhost" ? "127.0.0.1" : host
        self.port = port
    }

    /// Parses "host:port"; nil when it is not of that form.
    public init?(parsing text: String) {
        guard let colon = text.lastIndex(of: ":"), let port = UInt16(text[text.index(after: colon)...]) else { return nil }
        let host = String(text[..<colon])
        guard !host.isEmpty else { return nil }
        self.init(host: host, port: port)
    }

    public var description: String { "\(host):\(port)" }
}

/// A direction of traffic through the proxy: a is the side that connects to the proxy, b the target.
public enum FaultProxyDirection: Hashable, Sendable, CustomStringConvertible {
    /// From the connecting client (a) to the target (b): "a->b".
    case toTarget
    /// From the target (b) back to the client (a): "b->a".
    case toClient

    public var description: String { self == .toTarget ? "a->b" : "b->a" }
}

/// What the proxy does with the bytes it reads.
public enum FaultProxyMode: Hashable, Sendable, CustomStringConvertible {
    /// Forward everything at once.
    case pass
    /// Discard everything read in both directions; connections stay open (a partition).
    case drop
    /// Discard what flows in one direction only; forward the other (a one-way link).
    case dropOneWay(FaultProxyDirection)
    /// Hold every byte for this many milliseconds before forwarding it (order kept).
    case delay(milliseconds: Int)

    public var description: String {
        switch self {
        case .pass: "pass"
        case .drop: "drop"
        case .dropOneWay(let direction): "drop \(direction)"
        case .delay(let milliseconds): "delay \(milliseconds)"
        }
    }

    /// True when bytes flowing in `direction` are discarded.
    func drops(_ direction: FaultProxyDirection) -> Bool {
        switch self {
        case .drop: true
        case .dropOneWay(let dropped): dropped == direction
        case .pass, .delay: false
        }
    }

    /// How long bytes read now are held.
    var delayNanos: Int64 {
        if case .delay(let milliseconds) = self { return Int64(milliseconds) * 1_000_000 }
        return 0
    }
}

/// A command the proxy takes while running, in process (`FaultProxy.apply`) or as one line of text
/// on its control port.
///
/// Text forms: `pass`, `drop`, `drop a->b`, `drop b->a`, `delay MS`, `cut`, `status`.
public enum FaultProxyCommand: Hashable, Sendable, CustomStringConvertible {
    /// Switch to a mode; connections are kept.
    case set(FaultProxyMode)
    /// Close every proxied connection now (both sides); new connections are accepted afterwards.
    case cut
    /// Change nothing (the control port answers with the mode and connection count).
    case status

    /// The longest delay accepted, in milliseconds (a minute: longer is a mistake).
    public static let delayMillisecondsMax = 60_000

    /// Parses one command line (surrounding whitespace ignored).
    public init(parsing line: String) throws(FaultProxyCommandError) {
        let words = line.split(whereSeparator: \.isWhitespace).map(String.init)  // "\r\n" is one Character
        switch words.first {
        case "pass" where words.count == 1: self = .set(.pass)
        case "drop" where words.count == 1: self = .set(.drop)
        case "drop" where words.count == 2 && words[1] == "a->b": self = .set(.dropOneWay(.toTarget))
        case "drop" where words.count == 2 && words[1] == "b->a": self = .set(.dropOneWay(.toClient))
        case "delay" where words.count == 2:
            guard let milliseconds = Int(words[1]), milliseconds >= 0, milliseconds <= Self.delayMillisecondsMax else {
                throw FaultProxyCommandError(line: line, reason: "delay needs milliseconds in 0...\(Self.delayMillisecondsMax)")
            }
            self = .set(.delay(milliseconds: milliseconds))
        case "cut" where words.count == 1: self = .cut
        case "status" where words.count == 1: self = .status
        default:
            throw FaultProxyCommandError(line: line, reason: "expected pass, drop, drop a->b, drop b->a, delay MS, cut or status")
        }
    }

    public var description: String {
        switch self {
        case .set(let mode): mode.description
        case .cut: "cut"
        case .status: "status"
        }
    }
}

/// A control line that is not a command.
public struct FaultProxyCommandError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The line as received.
    public var line: String
    /// What was wrong with it.
    public var reason: String
    public var description: String { "bad command \"\(line)\": \(reason)" }
}
