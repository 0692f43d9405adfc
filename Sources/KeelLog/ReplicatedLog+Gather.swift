import KeelCore

// The pwrite method's batch: frames become pieces of one gather write per batch (more when the
// staging buffer or the piece list fills, or the batch reaches a segment's end). A small frame is
// encoded whole into the staging buffer; a large payload is not copied at all: its header goes to
// the staging buffer and the payload is written from the caller's buffer.
extension ReplicatedLog {
    /// Places an entry whose payload the gather write sends from the caller's buffer.
    @inline(__always)
    func appendGathered(term: Term, _ entry: LogEntryHeader, payload: UnsafeRawBufferPointer, occupiedBytes: Int) throws(LogError) {
        let header: UnsafeMutableRawPointer
        do {
            try beginFrame(occupiedBytes: occupiedBytes, term: term)
            header = try stage(LogFormat.frameHeaderBytes)
        } catch {
            abandonBatch()
            throw error
        }
        FrameCodec.encodeHeader(into: header, term: term, entry: entry, durablePosition: batchDurablePosition, payload: payload)
        addPiece(payload.baseAddress!, count: payload.count)
        let alignment = occupiedBytes - LogFormat.frameHeaderBytes - payload.count
        if alignment > 0 { addPiece(alignmentZeros, count: alignment) }
        placed(occupiedBytes: occupiedBytes, term: term)
    }

    /// Room for `bytes` bytes in the staging buffer, as the next pending bytes. Writes what is
    /// pending first when the buffer is full, or when the piece list has no room for a frame
    /// (a header, a payload and alignment zeros).
    @inline(__always)
    func stage(_ bytes: Int) throws(LogError) -> UnsafeMutableRawPointer {
        if stagedBytes + bytes > stagingCapacity || pieceCount + 3 > IOVector.maximumPieces { try flushStaging() }
        let destination = staging + stagedBytes
        stagedBytes += bytes
        addPiece(UnsafeRawPointer(destination), count: bytes)
        return destination
    }

    /// Appends `count` bytes at `base` to the pending bytes (extending the last piece when contiguous).
    @inline(__always)
    func addPiece(_ base: UnsafeRawPointer, count: Int) {
        pendingBytes += count
        if pieceCount > 0, let last = pieces[pieceCount - 1].base, last + pieces[pieceCount - 1].count == base {
            pieces[pieceCount - 1].count += count
            return
        }
        precondition(pieceCount < IOVector.maximumPieces, "a frame's pieces were reserved by stage")
        pieces[pieceCount] = IOVector(base: base, count: count)
        pieceCount += 1
    }

    func discardPending() {
        stagedBytes = 0
        pieceCount = 0
        pendingBytes = 0
    }

    /// Writes the pending bytes with one `pwrite` (one piece) or `pwritev` (the pwrite method; a
    /// no-op otherwise). Debug builds then re-check every frame written, through the mapping: a
    /// payload changed or freed before the write (a broken `append` contract) shows as a bad CRC.
    func flushStaging() throws(LogError) {
        guard pendingBytes > 0 else { return }
        let segment = segments[segmentIndex(of: stagingPosition)]
        let offset = segment.fileOffset(of: stagingPosition)
        do {
            if pieceCount == 1 {
                try storage.write(segment.file, at: offset, UnsafeRawBufferPointer(start: pieces[0].base, count: pieces[0].count))
            } else {
                try storage.write(segment.file, at: offset, gathering: UnsafeBufferPointer(start: pieces, count: pieceCount))
            }
        } catch { throw .storage(error) }
        if _isDebugAssertConfiguration() { checkWrittenFrames(segment, from: stagingPosition, bytes: pendingBytes) }
        stagingPosition = stagingPosition.advanced(by: Int64(pendingBytes))
        discardPending()
    }

    private func checkWrittenFrames(_ segment: LogSegment, from position: LogPosition, bytes: Int) {
        var offset = Int(position.bytes(since: segment.start))
        let end = offset + bytes
        while offset < end {
            let remaining = Int(segmentLength) - offset
            let check = FrameCodec.check(segment.data + offset, bytesToSegmentEnd: remaining, maxFrameBytes: maxFrameBytes, availableBytes: remaining)
            guard case .valid(let occupied) = check else {
                preconditionFailure("frame written at \(segment.start.rawValue + Int64(offset)) is not valid (\(check)): was a payload changed before commitBatch?")
            }
            offset += occupied
        }
    }
}
