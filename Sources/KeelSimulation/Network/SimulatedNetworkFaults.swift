import KeelCore

/// How a `SimulatedNetwork` delays and breaks TCP connections. Every draw comes from the network's
/// seeded generator, so one seed gives one history.
///
/// TCP never reorders or duplicates bytes inside a connection, so neither does this network: its
/// faults are timing (a delay with a long tail), whole connections cut, and links that stop
/// carrying packets (partitions, one-way links) until healed.
public struct SimulatedNetworkFaults: Sendable {
    /// Smallest one-way delay of a send.
    public var latencyMinNanos: Int64
    /// Uniform jitter added to every delay.
    public var latencyJitterNanos: Int64
    /// Chance that a send takes the long tail (a retransmission, a scheduling hiccup).
    public var latencyTailChance: Double
    /// Longest extra delay of the tail; tail delays skew towards short (cube of a uniform draw).
    public var latencyTailMaxNanos: Int64
    /// Chance, per send, that the connection is cut (reset at both ends) when that send would arrive.
    public var connectionCutChance: Double
    /// How long bytes may be held by a blocked link before the connection gives up and is reset
    /// (TCP's retransmission timeout, compressed). Healing sooner delivers them, in order.
    public var retransmissionTimeoutNanos: Int64
    /// How long a connect across a blocked link waits before failing with ETIMEDOUT.
    public var connectTimeoutNanos: Int64
    /// Bytes one direction of a connection holds (in flight plus unread) before sends wait: a
    /// reader that stops reading back-pressures its writer, as kernel socket buffers do.
    public var pipeCapacityBytes: Int

    public init(
        latencyMinNanos: Int64 = 50_000, latencyJitterNanos: Int64 = 50_000,
        latencyTailChance: Double = 0.01, latencyTailMaxNanos: Int64 = 20_000_000,
        connectionCutChance: Double = 0, retransmissionTimeoutNanos: Int64 = 1_000_000_000,
        connectTimeoutNanos: Int64 = 1_000_000_000, pipeCapacityBytes: Int = 256 << 10
    ) {
        precondition(latencyMinNanos >= 0 && latencyJitterNanos >= 0 && latencyTailMaxNanos >= 0, "delays are not negative")
        precondition(pipeCapacityBytes > 0, "a pipe holds at least one byte")
        self.latencyMinNanos = latencyMinNanos
        self.latencyJitterNanos = latencyJitterNanos
        self.latencyTailChance = latencyTailChance
        self.latencyTailMaxNanos = latencyTailMaxNanos
        self.connectionCutChance = connectionCutChance
        self.retransmissionTimeoutNanos = retransmissionTimeoutNanos
        self.connectTimeoutNanos = connectTimeoutNanos
        self.pipeCapacityBytes = pipeCapacityBytes
    }

    /// No faults at all: fixed small delay, nothing cut.
    public static let none = SimulatedNetworkFaults(latencyJitterNanos: 0, latencyTailChance: 0)
}
