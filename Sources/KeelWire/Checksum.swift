import CKeelChecksum

/// CRC32C (Castagnoli) over raw bytes: the checksum of every frame, snapshot chunk and hard-state slot.
/// Uses the CPU's crc32 instruction when present (6–7 GB/s per stream here), a table otherwise.
public enum CRC32C {
    /// The CRC32C of `bytes`, continuing from `previous` (0 to start).
    @inlinable
    public static func checksum(_ bytes: UnsafeRawBufferPointer, continuing previous: UInt32 = 0) -> UInt32 {
        keel_crc32c(previous, bytes.baseAddress, bytes.count)
    }
}
