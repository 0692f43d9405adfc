import KeelCore

/// How appended bytes reach the segment file.
///
/// Measured with `keel bench log` on this machine (ext4, kernel 6.18): `pwrite` is the default. A store
/// into a fresh page of a shared mapping first faults the page in (the kernel zero-fills it through
/// the read path, since it cannot know the whole page will be overwritten), then faults again to
/// make it writable; a `pwrite` of whole pages skips both. mappedCopy reached 3.3 M frames/s for
/// 32-byte payloads against 6.2 M for pwrite, and 0.6 GB/s against 1.5 GB/s for 1 KiB payloads.
public enum LogAppendMethod: String, Sendable, CaseIterable {
    /// Copy into a writable shared mapping of the preallocated segment: no syscall per append.
    case mappedCopy
    /// Encode headers (and small payloads) into a staging buffer and write the batch with one
    /// `pwrite` / `pwritev` (`Storage.write`), large payloads straight from the caller (the default).
    case pwrite
}

/// The settings of one replicated log.
public struct LogConfiguration: Sendable {
    /// The cluster every segment must belong to.
    public var clusterID: UInt64
    /// Data bytes per segment (a multiple of 4096); the file is 4096 bytes longer for its header.
    public var segmentLengthBytes: Int64
    /// The largest payload one entry may carry; bigger ones are refused with `LogError.payloadTooLarge`.
    public var maxPayloadBytes: Int
    /// `durable`: acknowledge what fdatasync covers; `replicated`: acknowledge what is written.
    public var durability: DurabilityMode
    /// How appends write (the IO benchmark compares them).
    public var appendMethod: LogAppendMethod
    /// Bytes of the staging buffer the `pwrite` method encodes a batch into (one write per fill).
    public var stagingBufferBytes: Int
    /// With the `pwrite` method, payloads of at least this many bytes are not copied: the batch's
    /// gather write (`pwritev`) sends them from the caller's buffer; smaller ones are copied into
    /// the staging buffer with their header. Measured (`keel bench log --gather-minimum`, appending
    /// thread's CPU per KiB): the copy wins up to 2 KiB (1 KiB: 316 against 364 ns/KiB gathered,
    /// two pieces per frame cost the kernel more than a copy), they are even at 4 KiB.
    public var gatherPayloadMinimumBytes: Int
    /// Start preparing the next segment once the active one is this full (0…1; 0: as soon as the
    /// active one is taken into use, which gives the background preparation the most time).
    public var nextSegmentThreshold: Double
    /// How prepared segments are preallocated (segments the log must create on the spot, at open or
    /// when a preparation failed, use the storage's `preallocate`).
    public var segmentPreallocation: LogSegmentPreallocation
    /// `replicated` mode only: a background fdatasync starts once this many bytes are unsynced, or
    /// once the oldest unsynced byte is `replicatedSyncDelayNanos` old (time as given to
    /// `poll(nowNanos:)`). Acknowledgements never wait for these syncs; batching them keeps the
    /// kernel worker that runs each one from waking once per duty cycle under light load.
    public var replicatedSyncBytes: Int64 = 4 << 20
    public var replicatedSyncDelayNanos: Int64 = 20_000_000

    public init(
        clusterID: UInt64, segmentLengthBytes: Int64 = 64 << 20, maxPayloadBytes: Int = 1 << 20,
        durability: DurabilityMode = .durable, appendMethod: LogAppendMethod = .pwrite,
        stagingBufferBytes: Int = 4 << 20, gatherPayloadMinimumBytes: Int = 4096, nextSegmentThreshold: Double = 0,
        segmentPreallocation: LogSegmentPreallocation = .allocate
    ) {
        self.clusterID = clusterID
        self.segmentLengthBytes = segmentLengthBytes
        self.maxPayloadBytes = maxPayloadBytes
        self.durability = durability
        self.appendMethod = appendMethod
        self.stagingBufferBytes = stagingBufferBytes
        self.gatherPayloadMinimumBytes = gatherPayloadMinimumBytes
        self.nextSegmentThreshold = nextSegmentThreshold
        self.segmentPreallocation = segmentPreallocation
    }

    /// The largest frame (header + payload, aligned).
    public var maxFrameBytes: Int { LogFormat.aligned(LogFormat.frameHeaderBytes + maxPayloadBytes) }

    func validate() throws(LogError) {
        guard segmentLengthBytes >= 8192, segmentLengthBytes % 4096 == 0 else {
            throw .badConfiguration("segmentLengthBytes \(segmentLengthBytes) must be a multiple of 4096, at least 8192")
        }
        guard maxPayloadBytes >= 0, Int64(maxFrameBytes) <= segmentLengthBytes / 2 else {
            throw .badConfiguration("maxPayloadBytes \(maxPayloadBytes) must leave a frame at most half a segment")
        }
        guard gatherPayloadMinimumBytes >= 1 else {
            throw .badConfiguration("gatherPayloadMinimumBytes \(gatherPayloadMinimumBytes) must be at least 1")
        }
        guard appendMethod == .mappedCopy || stagingBufferBytes >= maxFrameBytes else {
            throw .badConfiguration("stagingBufferBytes \(stagingBufferBytes) must hold the largest frame (\(maxFrameBytes))")
        }
    }
}
