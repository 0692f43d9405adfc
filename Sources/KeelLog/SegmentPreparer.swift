import KeelCore

/// How segment files are preallocated.
public enum LogSegmentPreallocation: String, Sendable, CaseIterable {
    /// Every byte written as zero before the segment is used (the IO benchmark's winner: a later
    /// fdatasync finds no unwritten extent to convert). Prepared in the background.
    case zeroFill
    /// The storage's `preallocate` (fallocate on Linux): cheap to prepare, dearer fdatasyncs.
    case allocate
}

/// Prepares the next segment file ahead of need through the storage's asynchronous operations, so
/// that rolling over costs the appending thread no file creation, zero fill or sync: only the
/// `open` at the start of a preparation and the `mmap` once the file is ready are synchronous.
///
/// Steps, each started when the one before completes (all through `Storage`, so the simulated disk
/// injects power losses between and inside them):
///
///     open (create) → zeros (or preallocate) → datasync → header page → datasync → directory sync → ready
///
/// The header is written only once the zeros are durable, and it is the only non-zero byte of a
/// prepared file. So a file whose preparation was cut by a crash has no valid header and recovery
/// removes it as a torn creation; one with a valid header is a whole, empty segment.
final class SegmentPreparer<S: Storage> {
    enum Phase: Equatable { case idle, zeroing, syncingZeros, writingHeader, syncingHeader, syncingDirectory, ready, failed }

    let storage: S
    let configuration: LogConfiguration
    private(set) var phase = Phase.idle
    /// The start position of the segment being prepared.
    private(set) var start = LogPosition.zero
    private(set) var name = ""
    private(set) var file: FileID?
    /// Why the last preparation failed (phase `failed`).
    private(set) var failure: IOError?
    /// Asynchronous operations submitted and not yet completed.
    private(set) var operationsInFlight = 0
    private var nextZeroOffset: Int64 = 0
    private let fileBytes: Int64
    private var zeros: UnsafeMutableRawPointer?
    private let header: UnsafeMutableRawPointer

    static var chunkBytes: Int { 1 << 20 }
    /// Zero writes in flight at once: enough to keep the device busy, few enough to leave it room for the log's syncs.
    static var zeroWritesInFlightMax: Int { 2 }
    /// "KP": tokens of the preparer's operations (the log's own syncs use "KL"); 48 bits in all.
    static var tokenTag: UInt64 { 0x4B50 << 32 }
    static var tokenTagMask: UInt64 { 0xFFFF << 32 }

    init(storage: S, configuration: LogConfiguration) {
        self.storage = storage
        self.configuration = configuration
        fileBytes = Int64(LogFormat.segmentHeaderRegionBytes) + configuration.segmentLengthBytes
        header = .allocate(byteCount: LogFormat.segmentHeaderRegionBytes, alignment: 4096)
    }

    deinit {
        // The owner drains the operations first (`ReplicatedLog` polls until none is in flight);
        // if it could not, the buffers are leaked rather than freed under the device's reads.
        guard operationsInFlight == 0 else { return }
        header.deallocate()
        zeros?.deallocate()
    }

    /// Whether `completion` belongs to the preparer.
    @inline(__always)
    static func owns(_ completion: IOCompletion) -> Bool { completion.token.rawValue & tokenTagMask == tokenTag }

    /// Starts preparing the segment at `start` (phase must be idle). A synchronous failure (the
    /// open) leaves the phase `failed`; the log then creates the segment itself when it needs it.
    func begin(start: LogPosition) {
        precondition(phase == .idle, "one preparation at a time")
        self.start = start
        name = LogFormat.segmentFileName(start: start)
        failure = nil
        do throws(IOError) {
            let file = try storage.openFile(name, create: true)
            self.file = file
            header.initializeMemory(as: UInt8.self, repeating: 0, count: LogFormat.segmentHeaderRegionBytes)
            SegmentHeader(
                formatVersion: UInt32(LogFormat.version), clusterID: configuration.clusterID,
                startPosition: start, segmentLengthBytes: configuration.segmentLengthBytes
            ).encode(into: UnsafeMutableRawBufferPointer(start: header, count: LogFormat.segmentHeaderBytes))
            switch configuration.segmentPreallocation {
            case .zeroFill:
                if zeros == nil {
                    zeros = .allocate(byteCount: Self.chunkBytes, alignment: 4096)
                    zeros!.initializeMemory(as: UInt8.self, repeating: 0, count: Self.chunkBytes)
                }
                phase = .zeroing
                nextZeroOffset = 0
                try submitZeros()
            case .allocate:
                try storage.preallocate(file, bytes: fileBytes)
                phase = .syncingZeros
                try submit(.syncingZeros)
            }
            try storage.flushSubmissions()
        } catch {
            fail(error)
        }
    }

    /// Moves the preparation on after one of its operations completed.
    func handle(_ completion: IOCompletion) {
        precondition(operationsInFlight > 0, "a preparer completion with nothing in flight")
        operationsInFlight -= 1
        guard phase != .failed else { return }
        if let error = completion.error { fail(error); return }
        do throws(IOError) {
            switch phase {
            case .zeroing:
                try submitZeros()
                if operationsInFlight == 0 { phase = .syncingZeros; try submit(.syncingZeros) }
            case .syncingZeros: phase = .writingHeader; try submit(.writingHeader)
            case .writingHeader: phase = .syncingHeader; try submit(.syncingHeader)
            case .syncingHeader: phase = .syncingDirectory; try submit(.syncingDirectory)
            case .syncingDirectory: phase = .ready
            case .idle, .ready, .failed: preconditionFailure("completion in phase \(phase)")
            }
            try storage.flushSubmissions()
        } catch {
            fail(error)
        }
    }

    /// Hands over the prepared file (phase ready → idle).
    func take() -> (start: LogPosition, name: String, file: FileID) {
        precondition(phase == .ready, "only a prepared segment can be taken")
        defer { phase = .idle; file = nil }
        return (start, name, file!)
    }

    /// The storage will complete none of the operations in flight (its process crashed).
    func abandonOperations() {
        operationsInFlight = 0
        if phase != .idle { fail(IOError(.write, errno: Errno.io, subject: "\(storage.location)/\(name) (abandoned)")) }
    }

    /// Removes an unfinished or failed preparation's file (nothing may be in flight) → idle.
    func discard() {
        precondition(operationsInFlight == 0, "drain the preparer's operations before discarding")
        if let file {
            storage.closeFile(file)
            try? storage.deleteFile(name)
        }
        file = nil
        phase = .idle
    }

    private func submitZeros() throws(IOError) {
        while operationsInFlight < Self.zeroWritesInFlightMax && nextZeroOffset < fileBytes {
            let count = Int(min(Int64(Self.chunkBytes), fileBytes - nextZeroOffset))
            try storage.submitWrite(file!, at: nextZeroOffset, UnsafeRawBufferPointer(start: zeros, count: count), token: token(.zeroing), thenDatasync: false)
            operationsInFlight += 1
            nextZeroOffset += Int64(count)
        }
    }

    private func submit(_ step: Phase) throws(IOError) {
        switch step {
        case .syncingZeros, .syncingHeader: try storage.submitDatasync(file!, token: token(step))
        case .writingHeader:
            let page = UnsafeRawBufferPointer(start: header, count: LogFormat.segmentHeaderRegionBytes)
            try storage.submitWrite(file!, at: 0, page, token: token(step), thenDatasync: false)
        case .syncingDirectory: try storage.submitSyncDirectory(token: token(step))
        default: preconditionFailure("no operation for \(step)")
        }
        operationsInFlight += 1
    }

    private func token(_ step: Phase) -> IOToken {
        let code: UInt64 = switch step {
        case .zeroing: 1
        case .syncingZeros: 2
        case .writingHeader: 3
        case .syncingHeader: 4
        default: 5
        }
        return IOToken(Self.tokenTag | code)
    }

    private func fail(_ error: IOError) {
        failure = error
        phase = .failed
    }
}
