import KeelCore

/// The payload of a timer-event log entry (the frame's correlation id is the timer's):
///
/// ```
///  0          8          16
/// +----------+----------+
/// | sequence | deadline |      sequence: the scheduling it fires; deadline: ns since the epoch
/// | i64      | i64      |      (both little-endian)
/// +----------+----------+
/// ```
/// The sequence lets every replica tell, when it applies the entry, whether the timer is still
/// pending as that scheduling (it may have been cancelled or rescheduled after the leader appended
/// the event); the deadline lets a new leader re-arm the timer if the entry is truncated away.
enum TimerEventPayload {
    static let bytes = 16

    static func encode(sequence: Int64, deadline: ClusterTime, into buffer: UnsafeMutableRawBufferPointer) {
        buffer.storeBytes(of: sequence.littleEndian, toByteOffset: 0, as: Int64.self)
        buffer.storeBytes(of: deadline.rawValue.littleEndian, toByteOffset: 8, as: Int64.self)
    }

    /// (sequence, deadline), or nil for a payload of another size.
    static func decode(_ payload: UnsafeRawBufferPointer) -> (sequence: Int64, deadline: ClusterTime)? {
        guard payload.count == bytes else { return nil }
        return (Int64(littleEndian: payload.loadUnaligned(fromByteOffset: 0, as: Int64.self)),
                ClusterTime(rawValue: Int64(littleEndian: payload.loadUnaligned(fromByteOffset: 8, as: Int64.self))))
    }
}
