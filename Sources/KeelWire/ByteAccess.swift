// Little-endian loads and stores at byte offsets. Frames arrive at any alignment inside a TCP
// receive buffer, so every access is an unaligned one (as cheap as an aligned one on x86-64 and arm64).

extension UnsafeRawBufferPointer {
    @inline(__always)
    func wireLoad<T: FixedWidthInteger>(_: T.Type, at offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }

    @inline(__always)
    func wireInt64(at offset: Int) -> Int64 { wireLoad(Int64.self, at: offset) }

    /// The bytes from `offset` to `offset + count`, as a view (no copy).
    @inline(__always)
    func wireSlice(at offset: Int, count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: self[offset..<(offset + count)])
    }
}

extension UnsafeMutableRawBufferPointer {
    @inline(__always)
    func wireStore<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }

    /// Copies `bytes` to `offset` (bounds-checked against this buffer).
    @inline(__always)
    func wireCopy(_ bytes: UnsafeRawBufferPointer, at offset: Int) {
        guard bytes.count > 0 else { return }
        precondition(offset >= 0 && offset + bytes.count <= count, "copy beyond the frame buffer")
        UnsafeMutableRawBufferPointer(rebasing: self[offset..<(offset + bytes.count)]).copyMemory(from: bytes)
    }
}
