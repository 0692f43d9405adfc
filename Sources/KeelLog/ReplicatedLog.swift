import KeelCore
import Synchronization

/// What opening a log found and did.
public struct LogRecoveryReport: Sendable, Equatable {
    /// Where the log begins (after compaction it need not be 0).
    public var startPosition: LogPosition
    /// The end of the last whole, valid frame: where the next append goes.
    public var endPosition: LogPosition
    /// The term of the last frame (the log-start term when there is none).
    public var lastTerm: Term
    /// The highest durable position any valid batch recorded.
    public var highestRecordedDurablePosition: LogPosition
    /// A torn tail that was cut: from where, how many bytes were zeroed, and why the first bad frame was bad.
    public var cutTail: (position: LogPosition, bytesZeroed: Int64, reason: String)?
    /// Segment files removed because their creation was torn or they lay wholly before the log start.
    public var removedSegments: [String]

    public static func == (lhs: LogRecoveryReport, rhs: LogRecoveryReport) -> Bool {
        lhs.startPosition == rhs.startPosition && lhs.endPosition == rhs.endPosition && lhs.lastTerm == rhs.lastTerm
            && lhs.highestRecordedDurablePosition == rhs.highestRecordedDurablePosition
            && lhs.cutTail?.position == rhs.cutTail?.position && lhs.cutTail?.bytesZeroed == rhs.cutTail?.bytesZeroed
            && lhs.removedSegments == rhs.removedSegments
    }
}

/// The replicated log: segments over a `Storage`, appended in batches, read zero-copy through the
/// mappings, made durable by group-committed fdatasyncs (DESIGN.md decisions 4 and 7).
///
/// Owned by one thread (the consensus agent): `append…`, `commitBatch`, `poll`, `truncate` and the
/// rest are called there and never block on a sync (truncation and segment creation do synchronous
/// control-path I/O). Other threads read through `reader` up to the published appended position.
///
/// Batches: `append` places frames (straight into the mapping, or into a staging buffer for the
/// pwrite method); `commitBatch` writes what is staged, publishes the new appended position and
/// starts an fdatasync if none is in flight. `poll` reaps the sync's completion, advances the durable
/// position and starts the next sync: at most one in flight, the next batch gathering meanwhile.
public final class ReplicatedLog<S: Storage> {
    /// The storage the segments live in (the log must be its only asynchronous user).
    public let storage: S
    /// The settings the log was opened with.
    public let configuration: LogConfiguration
    /// Positions and mappings for readers on other threads.
    public let publication: LogPublication
    /// What opening the log found.
    public let recoveryReport: LogRecoveryReport
    /// Which term wrote which part of the log.
    public internal(set) var termIndex: LogTermIndex
    /// The end of the last committed batch.
    public internal(set) var appendedPosition: LogPosition
    /// Everything below this is covered by a completed fdatasync.
    public internal(set) var durablePosition: LogPosition

    let segmentLength: Int64
    var segments: [LogSegment]
    var logStartRecord: SlottedRecordFile<S>
    let maxFrameBytes: Int

    // The segment the last mapped-copy frame went to (start -1: none yet).
    var cachedSegmentStart: Int64 = -1
    var cachedSegmentData: UnsafeMutableRawPointer?
    // The open batch.
    var batchOpen = false
    var cursor: LogPosition
    var batchDurablePosition: LogPosition
    // The pwrite method's pending bytes: `pieces[0..<pieceCount]`, `pendingBytes` in all, for
    // positions from `stagingPosition`. Headers and small frames are encoded into `staging`
    // (`stagedBytes` used); large payloads stay in the caller's buffer until the gather write.
    let staging: UnsafeMutableRawPointer
    let stagingCapacity: Int
    var stagingPosition: LogPosition
    var stagedBytes = 0
    let pieces: UnsafeMutablePointer<IOVector>
    var pieceCount = 0
    var pendingBytes = 0
    /// Zero bytes for the alignment after a gathered payload.
    let alignmentZeros: UnsafeMutableRawPointer

    /// Prepares the next segment in the background (through the storage's asynchronous operations).
    let preparer: SegmentPreparer<S>

    // Group commit: at most one fdatasync in flight.
    var completions: IOCompletionBuffer
    /// Whether an fdatasync is in flight (benchmarks time the syncs by it).
    public internal(set) var syncInFlight = false
    var syncTarget: LogPosition = .zero
    /// Replicated mode's sync batching: the time of the latest `poll(nowNanos:)`, and when the
    /// oldest unsynced byte was appended (nil: everything appended is synced or being synced).
    var lastPollNanos: Int64?
    var unsyncedSinceNanos: Int64?
    var syncGeneration: UInt64 = 0
    // Tokens must fit in 48 bits (the io_uring storage keeps the rest of user_data for itself).
    static var tokenTag: UInt64 { 0x4B4C << 32 }  // "KL"
    static var tokenTagMask: UInt64 { 0xFFFF << 32 }

    /// Opens the log in `storage`'s directory, creating it when empty, and recovers it (see
    /// docs/log-format.md): cuts a torn tail of unsynced writes, refuses corruption below the durable
    /// position any valid batch recorded, and makes what remains durable before returning.
    public init(storage: S, configuration: LogConfiguration) throws(LogError) {
        try configuration.validate()
        self.storage = storage
        self.configuration = configuration
        segmentLength = configuration.segmentLengthBytes
        maxFrameBytes = configuration.maxFrameBytes
        publication = LogPublication(segmentLengthBytes: segmentLength)
        let recovered = try LogRecovery<S>(storage: storage, configuration: configuration).run()
        segments = recovered.segments
        logStartRecord = recovered.logStartRecord
        termIndex = recovered.termIndex
        recoveryReport = recovered.report
        appendedPosition = recovered.report.endPosition
        durablePosition = recovered.report.endPosition
        cursor = appendedPosition
        batchDurablePosition = durablePosition
        stagingPosition = appendedPosition
        stagingCapacity = configuration.appendMethod == .pwrite ? configuration.stagingBufferBytes : 0
        staging = .allocate(byteCount: max(stagingCapacity, 64), alignment: 4096)
        pieces = .allocate(capacity: IOVector.maximumPieces)
        alignmentZeros = .allocate(byteCount: LogFormat.frameAlignmentBytes, alignment: 64)
        alignmentZeros.initializeMemory(as: UInt8.self, repeating: 0, count: LogFormat.frameAlignmentBytes)
        completions = IOCompletionBuffer(capacity: 16)
        preparer = SegmentPreparer(storage: storage, configuration: configuration)
        for segment in segments { publication.setSegmentData(start: segment.start.rawValue, base: segment.data) }
        publication.startPosition.store(termIndex.logStart.rawValue, ordering: .releasing)
        publication.durablePosition.store(durablePosition.rawValue, ordering: .releasing)
        publication.appendedPosition.store(appendedPosition.rawValue, ordering: .releasing)
        prepareNextSegmentIfDue()
    }

    deinit {
        drainPreparer()
        for segment in segments { segment.close(storage: storage) }
        logStartRecord.close()
        staging.deallocate()
        pieces.deallocate()
        alignmentZeros.deallocate()
    }

    /// A reader of this log, usable on any thread.
    public var reader: LogReader { LogReader(publication: publication) }
    /// Where the log begins.
    public var startPosition: LogPosition { termIndex.logStart }
    /// The term of the last committed frame.
    public var lastTerm: Term { termIndex.lastTerm }
    /// What this node may acknowledge: the durable position in `durable` mode, the appended one in `replicated`.
    public var acknowledgedPosition: LogPosition {
        configuration.durability == .durable ? durablePosition : appendedPosition
    }

    // MARK: Append

    /// Places one entry of `term` into the open batch (opening one if needed). Refuses a payload over
    /// `maxPayloadBytes`. Nothing is visible to readers until `commitBatch`.
    ///
    /// The payload is read until the batch is written: keep it valid and unchanged until
    /// `commitBatch` or `abandonBatch` returns. (With the pwrite method, payloads of at least
    /// `gatherPayloadMinimumBytes` are not copied: the batch's gather write sends them from here.)
    public func append(term: Term, _ entry: LogEntryHeader, payload: UnsafeRawBufferPointer) throws(LogError) {
        guard payload.count <= configuration.maxPayloadBytes else {
            throw .payloadTooLarge(bytes: payload.count, maximumBytes: configuration.maxPayloadBytes)
        }
        precondition(entry.type != .padding, "padding is written by the log itself")
        let occupied = LogFormat.aligned(LogFormat.frameHeaderBytes + payload.count)
        if configuration.appendMethod == .pwrite && payload.count >= configuration.gatherPayloadMinimumBytes {
            try appendGathered(term: term, entry, payload: payload, occupiedBytes: occupied)
            return
        }
        let destination = try reserve(occupiedBytes: occupied, term: term)
        _ = FrameCodec.encodeFrame(into: destination, term: term, entry: entry, durablePosition: batchDurablePosition, payload: payload)
        placed(occupiedBytes: occupied, term: term)
    }

    /// Places one entry whose `payloadBytes`-byte payload `encode` writes in place (no copy).
    public func append<E: Error>(
        term: Term, _ entry: LogEntryHeader, payloadBytes: Int, encode: (UnsafeMutableRawBufferPointer) throws(E) -> Void
    ) throws(LogError) {
        guard payloadBytes <= configuration.maxPayloadBytes else {
            throw .payloadTooLarge(bytes: payloadBytes, maximumBytes: configuration.maxPayloadBytes)
        }
        precondition(entry.type != .padding, "padding is written by the log itself")
        let length = LogFormat.frameHeaderBytes + payloadBytes
        let occupied = LogFormat.aligned(length)
        let destination = try reserve(occupiedBytes: occupied, term: term)
        do {
            try encode(UnsafeMutableRawBufferPointer(start: destination + LogFormat.frameHeaderBytes, count: payloadBytes))
        } catch {
            abandonBatch()
            throw .invalidFrames(position: cursor, reason: "payload encoder failed: \(error)")
        }
        _ = FrameCodec.sealFrame(destination, length: length, occupied: occupied, term: term, entry: entry, durablePosition: batchDurablePosition)
        placed(occupiedBytes: occupied, term: term)
    }

    /// Ends the open batch: writes what is staged (pwrite method), publishes the new appended
    /// position (release) and starts an fdatasync if none is in flight. Returns the appended position.
    @discardableResult
    public func commitBatch() throws(LogError) -> LogPosition {
        guard batchOpen else { return appendedPosition }
        do { try flushStaging() } catch { abandonBatch(); throw error }
        batchOpen = false
        appendedPosition = cursor
        publication.appendedPosition.store(cursor.rawValue, ordering: .releasing)
        prepareNextSegmentIfDue()
        _ = try startSyncIfIdle()
        return cursor
    }

    /// Drops the open batch: nothing placed since the last commit stays (zeroed where written).
    public func abandonBatch() {
        guard batchOpen else { return }
        batchOpen = false
        try? zero(from: appendedPosition, to: cursor, sync: false)
        termIndex.truncate(from: appendedPosition)
        cursor = appendedPosition
        stagingPosition = appendedPosition
        discardPending()
    }

    /// Returns where a frame of `occupiedBytes` goes, rolling to the next segment (with padding) when
    /// it does not fit in this one.
    @inline(__always)
    func reserve(occupiedBytes: Int, term: Term) throws(LogError) -> UnsafeMutableRawPointer {
        do {
            try beginFrame(occupiedBytes: occupiedBytes, term: term)
            if configuration.appendMethod == .pwrite { return try stage(occupiedBytes) }
        } catch {
            abandonBatch()
            throw error
        }
        let offset = cursor.rawValue % segmentLength
        if cursor.rawValue - offset != cachedSegmentStart {
            // Cached so the per-frame path copies no segment (whose name would be retained and released).
            let segment = segments[segmentIndex(of: cursor)]
            cachedSegmentStart = segment.start.rawValue
            cachedSegmentData = segment.writableData
        }
        return cachedSegmentData! + Int(offset)
    }

    /// Opens a batch if none is open and makes room for a frame of `occupiedBytes` at the cursor:
    /// pads the segment and moves to the next when the frame does not fit in this one.
    @inline(__always)
    func beginFrame(occupiedBytes: Int, term: Term) throws(LogError) {
        if !batchOpen {
            batchOpen = true
            batchDurablePosition = durablePosition
            stagingPosition = cursor
            discardPending()
        }
        precondition(term >= termIndex.lastTerm, "appended terms never go backwards")
        if Int(cursor.rawValue % segmentLength) + occupiedBytes > Int(segmentLength) { try pad(term: term) }
        if cursor.rawValue >= lastSegmentEnd { try createNextSegment() }
        if configuration.appendMethod == .pwrite {
            // One write never crosses into the next segment's file (a frame that ended exactly at
            // the segment end left no padding to flush on).
            if pendingBytes > 0 && cursor.rawValue % segmentLength == 0 { try flushStaging() }
            precondition(stagingPosition.advanced(by: Int64(pendingBytes)) == cursor, "pending bytes end at the cursor")
        }
    }

    @inline(__always)
    func placed(occupiedBytes: Int, term: Term) {
        termIndex.noteFrame(term: term, at: cursor)
        cursor = cursor.advanced(by: Int64(occupiedBytes))
    }

    /// Fills the rest of the cursor's segment with a padding frame and moves to the next segment.
    func pad(term: Term) throws(LogError) {
        let remaining = Int(segmentLength - cursor.rawValue % segmentLength)
        switch configuration.appendMethod {
        case .mappedCopy:
            let segment = segments[segmentIndex(of: cursor)]
            FrameCodec.encodePadding(into: segment.writableData + Int(cursor.bytes(since: segment.start)), bytes: remaining, term: term)
        case .pwrite:
            FrameCodec.encodePadding(into: try stage(LogFormat.paddingFrameMinimumBytes), bytes: remaining, term: term)
            try flushStaging()
        }
        termIndex.noteFrame(term: term, at: cursor)
        cursor = cursor.advanced(by: Int64(remaining))
        stagingPosition = cursor
    }

    // MARK: Segments

    var lastSegmentEnd: Int64 { segments[segments.count - 1].start.rawValue + segmentLength }

    @inline(__always)
    func segmentIndex(of position: LogPosition) -> Int {
        let index = Int((position.rawValue - segments[0].start.rawValue) / segmentLength)
        precondition(index >= 0 && index < segments.count, "position \(position) lies outside the open segments")
        return index
    }

    /// Makes the segment at `lastSegmentEnd` available: the prepared one (waiting for its
    /// preparation to finish if it is under way), or, when none was prepared or preparing failed,
    /// one created here synchronously (which reports a full disk).
    func createNextSegment() throws(LogError) {
        guard segments.count < publication.slotCount else {
            throw .badConfiguration("more than \(publication.slotCount) segments open; delete old segments or use bigger ones")
        }
        let needed = lastSegmentEnd
        if preparer.phase != .idle && preparer.start.rawValue == needed {
            try finishPreparation()
            if lastSegmentEnd > needed { return }
        }
        if preparer.phase == .failed { preparer.discard() }
        let segment = try LogSegment.create(storage: storage, start: LogPosition(needed), configuration: configuration)
        publication.setSegmentData(start: segment.start.rawValue, base: segment.data)
        segments.append(segment)
    }

    /// Starts preparing the next segment in the background once the active one passes the
    /// threshold, so that roll-over costs no file creation and a full disk shows up early. (The
    /// prepared file's pages are written, not read ahead: reading them only made the kernel
    /// zero-fill page-cache pages that the appends then faulted in again for writing.)
    func prepareNextSegmentIfDue() {
        let offset = Double(cursor.rawValue % segmentLength)
        guard preparer.phase == .idle, lastSegmentEnd - cursor.rawValue <= segmentLength,
              offset >= configuration.nextSegmentThreshold * Double(segmentLength),
              segments.count < publication.slotCount else { return }
        preparer.begin(start: LogPosition(lastSegmentEnd))  // A failure is reported by the append that needs the segment.
    }

    /// Polls and waits until the preparation under way has finished (adopted, or failed with
    /// nothing left in flight).
    func finishPreparation() throws(LogError) {
        while (preparer.phase != .idle && preparer.phase != .failed) || preparer.operationsInFlight > 0 {
            try poll()
            guard (preparer.phase != .idle && preparer.phase != .failed) || preparer.operationsInFlight > 0 else { break }
            do { try storage.waitForCompletions(timeoutNanos: 1_000_000) } catch { throw .storage(error) }
        }
    }

    /// Takes the prepared file into use as the next segment (mapped, published).
    func adoptPreparedSegment() {
        let prepared = preparer.take()
        guard prepared.start.rawValue == lastSegmentEnd, segments.count < publication.slotCount else {
            storage.closeFile(prepared.file)
            try? storage.deleteFile(prepared.name)
            return
        }
        do {
            let fileBytes = Int64(LogFormat.segmentHeaderRegionBytes) + segmentLength
            let segment = try LogSegment.map(
                storage: storage, start: prepared.start, name: prepared.name, file: prepared.file, fileBytes: fileBytes,
                method: configuration.appendMethod)
            publication.setSegmentData(start: segment.start.rawValue, base: segment.data)
            segments.append(segment)
        } catch {
            storage.closeFile(prepared.file)  // created on demand instead, which reports the error
            try? storage.deleteFile(prepared.name)
        }
    }

    /// Waits (bounded) until none of the preparer's operations is in flight, then drops an
    /// unfinished preparation's file. A storage that can no longer complete anything (a crashed
    /// simulated process) has abandoned the operations.
    func drainPreparer() {
        var rounds = 0
        while preparer.operationsInFlight > 0 && rounds < 10_000 {
            rounds += 1
            _ = try? poll()
            guard preparer.operationsInFlight > 0 else { break }
            do { try storage.waitForCompletions(timeoutNanos: 1_000_000) } catch {
                preparer.abandonOperations()
                break
            }
        }
        if preparer.phase != .idle && preparer.operationsInFlight == 0 { preparer.discard() }
    }

    /// Zeroes [from, to) in the segment files (never shrinking them), optionally fdatasyncing each.
    func zero(from: LogPosition, to: LogPosition, sync: Bool) throws(LogError) {
        var position = from
        while position < to {
            let segment = segments[segmentIndex(of: position)]
            let pieceEnd = min(to, segment.start.advanced(by: segmentLength))
            do {
                try storage.zeroRange(segment.file, at: segment.fileOffset(of: position), bytes: pieceEnd.bytes(since: position))
                if sync { try storage.datasync(segment.file) }
            } catch { throw .storage(error) }
            position = pieceEnd
        }
    }

    // MARK: Durability

    /// One duty-cycle step: reaps the fdatasync completion, advances the durable position, and starts
    /// the next sync if anything is unsynced. Never blocks. Returns the work done (0 when idle).
    @discardableResult
    public func poll() throws(LogError) -> Int {
        lastPollNanos = nil  // no clock: sync eagerly, as callers without one (tests, tools) expect
        return try pollCompletions()
    }

    /// The duty cycle's step with a monotonic clock reading: as `poll()`, but in `replicated` mode a
    /// background sync waits until `replicatedSyncBytes` are unsynced or the oldest unsynced byte is
    /// `replicatedSyncDelayNanos` old.
    @discardableResult
    public func poll(nowNanos: Int64) throws(LogError) -> Int {
        lastPollNanos = nowNanos
        return try pollCompletions()
    }

    private func pollCompletions() throws(LogError) -> Int {
        var work = 0
        storage.reapCompletions(into: &completions)
        var failure: IOError?
        for index in 0..<completions.count {
            let completion = completions[index]
            if SegmentPreparer<S>.owns(completion) {
                preparer.handle(completion)
                work += 1
                continue
            }
            guard completion.token.rawValue & Self.tokenTagMask == Self.tokenTag else { continue }
            work += 1
            syncInFlight = false
            if let error = completion.error { failure = error; continue }
            // A sync submitted before a truncation says nothing about what was appended after it.
            guard completion.token.rawValue & 0xFFFF_FFFF == syncGeneration & 0xFFFF_FFFF else { continue }
            if syncTarget > durablePosition {
                durablePosition = syncTarget
                publication.durablePosition.store(durablePosition.rawValue, ordering: .releasing)
            }
        }
        completions.removeAll()
        if preparer.phase == .ready { adoptPreparedSegment() }
        if let failure { throw .storage(failure) }
        return work + (try startSyncIfIdle())
    }

    func startSyncIfIdle() throws(LogError) -> Int {
        guard !syncInFlight, durablePosition < appendedPosition else { return 0 }
        if configuration.durability == .replicated, let now = lastPollNanos {
            let since = unsyncedSinceNanos ?? now
            unsyncedSinceNanos = since
            let due = appendedPosition.bytes(since: durablePosition) >= configuration.replicatedSyncBytes
                || now &- since >= configuration.replicatedSyncDelayNanos
            guard due else { return 0 }
        }
        unsyncedSinceNanos = nil
        let segment = segments[segmentIndex(of: durablePosition)]
        let target = min(appendedPosition, segment.start.advanced(by: segmentLength))
        do {
            try storage.submitDatasync(segment.file, token: IOToken(Self.tokenTag | (syncGeneration & 0xFFFF_FFFF)))
            try storage.flushSubmissions()
        } catch { throw .storage(error) }
        syncInFlight = true
        syncTarget = target
        return 1
    }

    /// Polls and waits on the storage until `position` is durable or `timeoutNanos` of waiting
    /// has passed; returns whether it is durable (for tests, tools and shutdown — not the duty cycle).
    public func waitUntilDurable(_ position: LogPosition, timeoutNanos: Int64 = 10_000_000_000) throws(LogError) -> Bool {
        var waitedNanos: Int64 = 0
        let stepNanos: Int64 = 1_000_000
        while true {
            try poll()
            if durablePosition >= position || durablePosition >= appendedPosition && position > appendedPosition { break }
            if waitedNanos >= timeoutNanos { break }
            do { try storage.waitForCompletions(timeoutNanos: stepNanos) } catch { throw .storage(error) }
            waitedNanos += stepNanos
        }
        return durablePosition >= position
    }
}
