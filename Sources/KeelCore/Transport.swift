/// A connection made through a `Transport`. Only meaningful to the transport that issued it.
public struct ConnectionID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public var description: String { "conn#\(rawValue)" }
}

/// Byte-stream networking, completion-based like `Storage` (DESIGN.md decision 3).
///
/// Sketched here so the Storage and Clock implementations leave room for it; the wire/transport
/// issue settles it and adds the io_uring (KeelIO), plain-socket (KeelPOSIX) and simulated
/// (KeelSimulation) implementations.
public protocol Transport: AnyObject {
    /// Starts listening on `host:port`; accepted connections arrive as completions of `submitAccept`.
    func listen(host: String, port: UInt16) throws(IOError) -> ConnectionID
    /// Queues an accept on a listener; its completion's result is the new connection's raw id.
    func submitAccept(_ listener: ConnectionID, token: IOToken) throws(IOError)
    /// Queues a connect; the returned connection is usable once the completion reports success.
    func submitConnect(host: String, port: UInt16, token: IOToken) throws(IOError) -> ConnectionID
    /// Queues a send of `bytes`, which must stay valid until the completion is reaped. A send may
    /// take fewer bytes than given (its completion's result says how many): the caller sends the
    /// rest before anything else on that connection.
    func submitSend(_ connection: ConnectionID, _ bytes: UnsafeRawBufferPointer, token: IOToken) throws(IOError)
    /// Queues a receive into `buffer`, which must stay valid until the completion is reaped.
    func submitReceive(_ connection: ConnectionID, into buffer: UnsafeMutableRawBufferPointer, token: IOToken) throws(IOError)
    /// Closes a connection or listener; operations still queued on it complete with an error.
    func close(_ connection: ConnectionID)
    /// Moves the completions that have arrived into `completions`, without blocking.
    func reapCompletions(into completions: inout IOCompletionBuffer)
    /// The address at the other end of an open connection (`host:port`), for messages; nil when
    /// the transport cannot tell.
    func peerAddress(_ connection: ConnectionID) -> String?
}

extension Transport {
    public func peerAddress(_ connection: ConnectionID) -> String? { nil }
}
