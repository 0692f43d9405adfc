import KeelCore

/// Bytes on their way to an endpoint, arriving at `arrivalNanos` (never earlier than the segment
/// before: a TCP stream does not reorder).
struct SimulatedSegment {
    var arrivalNanos: Int64
    var bytes: [UInt8]
    /// A FIN (orderly close) rather than data.
    var isEndOfStream: Bool
}

/// One end of a simulated TCP connection, owned by one `SimulatedTransport`.
///
/// Incoming bytes move from `inFlight` (travelling) to `arrived` (in the receive buffer) when
/// their time comes and the link from the peer carries packets; receives take from `arrived`.
final class SimulatedEndpoint {
    enum State: Equatable {
        /// A connect is under way.
        case connecting
        case open
        /// Closed locally; the endpoint is forgotten once its operations are cancelled.
        case closed
        /// The connection was reset (cut, peer crashed, retransmission timeout): every operation
        /// ends with this errno.
        case failed(Int32)
    }

    struct PendingReceive {
        var buffer: UnsafeMutableRawBufferPointer
        var token: IOToken
    }

    struct PendingSend {
        var bytes: UnsafeRawBufferPointer
        var token: IOToken
    }

    let id: ConnectionID
    unowned let transport: SimulatedTransport
    /// The host at the other end (for partitions).
    var remoteHost: String
    var state: State = .connecting
    weak var peer: SimulatedEndpoint?

    var inFlight: [SimulatedSegment] = []
    private var inFlightHead = 0
    var arrived: [UInt8] = []
    var arrivedHead = 0
    /// The peer's FIN has arrived (after every byte sent before it).
    var endOfStreamArrived = false
    /// This end has sent its FIN: sends are refused.
    var sentEndOfStream = false
    var pendingReceives: [PendingReceive] = []
    var pendingSends: [PendingSend] = []
    /// When the network should cut this connection (a drawn fault), if ever.
    var cutAtNanos: Int64?

    init(id: ConnectionID, transport: SimulatedTransport, remoteHost: String) {
        self.id = id
        self.transport = transport
        self.remoteHost = remoteHost
    }

    var localHost: String { transport.host }
    var unreadBytes: Int { arrived.count - arrivedHead }
    var hasInFlight: Bool { inFlightHead < inFlight.count }
    var nextArrivalNanos: Int64? { hasInFlight ? inFlight[inFlightHead].arrivalNanos : nil }

    /// Bytes travelling to this endpoint or waiting unread in it.
    var bufferedBytes: Int {
        var total = unreadBytes
        for index in inFlightHead..<inFlight.count { total += inFlight[index].bytes.count }
        return total
    }

    /// When the last segment now travelling arrives (a new one may not arrive earlier).
    var lastArrivalNanos: Int64 { inFlight.last.map(\.arrivalNanos) ?? 0 }

    func enqueue(_ segment: SimulatedSegment) {
        inFlight.append(segment)
    }

    /// Moves every segment due by `nowNanos` into the receive buffer. Returns false when the head
    /// segment is due but held by a blocked link (the caller decides about the timeout).
    func deliverDue(nowNanos: Int64, linkOpen: Bool) -> (delivered: Bool, heldSinceNanos: Int64?) {
        var delivered = false
        while inFlightHead < inFlight.count, inFlight[inFlightHead].arrivalNanos <= nowNanos {
            guard linkOpen else { return (delivered, inFlight[inFlightHead].arrivalNanos) }
            let segment = inFlight[inFlightHead]
            inFlightHead += 1
            delivered = true
            if segment.isEndOfStream { endOfStreamArrived = true } else { arrived.append(contentsOf: segment.bytes) }
        }
        if inFlightHead == inFlight.count {
            inFlight.removeAll(keepingCapacity: true)
            inFlightHead = 0
        }
        return (delivered, nil)
    }

    /// Copies up to `buffer.count` unread bytes into `buffer`; returns the count.
    func read(into buffer: UnsafeMutableRawBufferPointer) -> Int {
        let count = min(buffer.count, unreadBytes)
        arrived.withUnsafeBytes { source in
            buffer.baseAddress!.copyMemory(from: source.baseAddress! + arrivedHead, byteCount: count)
        }
        arrivedHead += count
        if arrivedHead == arrived.count {
            arrived.removeAll(keepingCapacity: true)
            arrivedHead = 0
        } else if arrivedHead > 1 << 16 && arrivedHead * 2 > arrived.count {
            arrived.removeFirst(arrivedHead)
            arrivedHead = 0
        }
        return count
    }

    /// Drops everything travelling or unread (the connection was reset).
    func discardBuffers() {
        inFlight.removeAll()
        inFlightHead = 0
        arrived.removeAll()
        arrivedHead = 0
    }
}
