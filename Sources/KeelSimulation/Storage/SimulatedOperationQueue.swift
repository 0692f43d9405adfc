import KeelCore

/// One asynchronous operation submitted to a `SimulatedStorage`.
struct SimulatedOperation {
    enum Kind { case write, datasync, syncDirectory }

    let kind: Kind
    let token: IOToken
    /// The file written or synced (nil for a directory sync).
    let file: SimulatedFile?
    /// The directory a directory sync makes durable.
    let directory: SimulatedDirectory?
    let offset: Int64
    /// The caller's bytes for a write; they must stay valid until the completion is reaped.
    let bytes: UnsafeRawBufferPointer
    /// Submission order.
    let sequence: UInt64
    /// For a datasync linked after a write: that write's sequence.
    let linkedAfter: UInt64?

    var completionOperation: IOOperation {
        switch kind {
        case .write: .write
        case .datasync: .datasync
        case .syncDirectory: .syncDirectory
        }
    }
}

/// The asynchronous path of a `SimulatedStorage`, shaped like an io_uring: submissions queue until
/// flushed, flushed operations complete in a seeded order (a linked datasync never before its
/// write), and completions wait until reaped.
struct SimulatedOperationQueue {
    private var queued: [SimulatedOperation] = []
    private var inFlight: [SimulatedOperation] = []
    private var arrived: [IOCompletion] = []
    private var arrivedHead = 0
    private var nextSequence: UInt64 = 0

    var hasArrived: Bool { arrivedHead < arrived.count }
    var pendingCount: Int { queued.count + inFlight.count }

    mutating func submitWrite(_ file: SimulatedFile, at offset: Int64, _ bytes: UnsafeRawBufferPointer, token: IOToken, thenDatasync: Bool) {
        let write = makeOperation(.write, file, offset: offset, bytes: bytes, token: token, linkedAfter: nil)
        queued.append(write)
        if thenDatasync {
            queued.append(makeOperation(.datasync, file, offset: 0, bytes: UnsafeRawBufferPointer(start: nil, count: 0), token: token, linkedAfter: write.sequence))
        }
    }

    mutating func submitDatasync(_ file: SimulatedFile, token: IOToken) {
        queued.append(makeOperation(.datasync, file, offset: 0, bytes: UnsafeRawBufferPointer(start: nil, count: 0), token: token, linkedAfter: nil))
    }

    mutating func submitSyncDirectory(_ directory: SimulatedDirectory, token: IOToken) {
        queued.append(SimulatedOperation(
            kind: .syncDirectory, token: token, file: nil, directory: directory, offset: 0,
            bytes: UnsafeRawBufferPointer(start: nil, count: 0), sequence: nextSequence, linkedAfter: nil))
        nextSequence += 1
    }

    private mutating func makeOperation(
        _ kind: SimulatedOperation.Kind, _ file: SimulatedFile, offset: Int64, bytes: UnsafeRawBufferPointer, token: IOToken, linkedAfter: UInt64?
    ) -> SimulatedOperation {
        defer { nextSequence += 1 }
        return SimulatedOperation(kind: kind, token: token, file: file, directory: nil, offset: offset, bytes: bytes, sequence: nextSequence, linkedAfter: linkedAfter)
    }

    /// Hands queued operations to the simulated device.
    mutating func flush() {
        inFlight.append(contentsOf: queued)
        queued.removeAll(keepingCapacity: true)
    }

    /// Completes ready in-flight operations in random order: one after another while the disk's
    /// `completionChance` says so, and at least one (if any is in flight) when `atLeastOne`.
    mutating func completeReady(on disk: SimulatedDisk, atLeastOne: Bool) {
        var mustComplete = atLeastOne
        while !inFlight.isEmpty {
            guard mustComplete || disk.random.chance(disk.faults.completionChance) else { return }
            mustComplete = false
            let readyCount = inFlight.indices.count(where: isReady)
            precondition(readyCount > 0, "an in-flight operation is always ready (a linked datasync follows its write)")
            var skip = Int(disk.random.integer(in: 0...Int64(readyCount - 1)))
            for index in inFlight.indices where isReady(index) {
                if skip == 0 { complete(inFlight.remove(at: index), on: disk); break }
                skip -= 1
            }
        }
    }

    /// A linked datasync is ready only once its write has completed.
    private func isReady(_ index: Int) -> Bool {
        guard let write = inFlight[index].linkedAfter else { return true }
        return !inFlight.contains { $0.sequence == write }
    }

    private mutating func complete(_ operation: SimulatedOperation, on disk: SimulatedDisk) {
        let errno: Int32?
        switch operation.kind {
        case .write: errno = disk.performWrite(operation.file!, at: operation.offset, operation.bytes)
        case .datasync: errno = disk.performDatasync(operation.file!)
        case .syncDirectory: errno = disk.performDirectorySync(operation.directory!)
        }
        let result = errno.map { -$0 } ?? (operation.kind == .write ? Int32(operation.bytes.count) : 0)
        arrived.append(IOCompletion(token: operation.token, operation: operation.completionOperation, result: result))
        guard errno != nil, operation.kind == .write,
              let linked = inFlight.firstIndex(where: { $0.linkedAfter == operation.sequence }) else { return }
        // A failed write breaks its link: the datasync after it is cancelled, as io_uring does.
        let cancelled = inFlight.remove(at: linked)
        arrived.append(IOCompletion(token: cancelled.token, operation: .datasync, result: -Errno.canceled))
    }

    /// Moves arrived completions into `completions`, oldest first, as many as fit.
    mutating func moveArrived(into completions: inout IOCompletionBuffer) {
        while arrivedHead < arrived.count, completions.append(arrived[arrivedHead]) {
            arrivedHead += 1
        }
        if arrivedHead == arrived.count {
            arrived.removeAll(keepingCapacity: true)
            arrivedHead = 0
        }
    }

    /// The process died: each queued or in-flight operation, in submission order, happened (a write
    /// perhaps only for a prefix of its sectors) or did not. A linked datasync can have happened
    /// only if its whole write did. Injected failures are not consumed.
    mutating func abandon(on disk: SimulatedDisk, random: inout SeededRandom, faults: SimulatedFaultModel) {
        let pending = (inFlight + queued).sorted { $0.sequence < $1.sequence }
        var wholeWrites = Set<UInt64>()
        for operation in pending where random.chance(faults.pendingOperationHappenedChance) {
            switch operation.kind {
            case .write:
                let kept = Self.keptPrefixBytes(of: operation, random: &random)
                let prefix = UnsafeRawBufferPointer(rebasing: operation.bytes[0..<kept])
                if disk.growthError(operation.file!, toLength: Int(operation.offset) + kept) == nil {
                    operation.file!.write(at: Int(operation.offset), prefix)
                    if kept == operation.bytes.count { wholeWrites.insert(operation.sequence) }
                }
            case .datasync:
                if let write = operation.linkedAfter, !wholeWrites.contains(write) { continue }
                operation.file!.sync()
            case .syncDirectory:
                operation.directory!.sync()
            }
        }
        queued.removeAll()
        inFlight.removeAll()
        arrived.removeAll()
        arrivedHead = 0
    }

    /// How much of a write a crash let through: whole sectors from its start, or all of it.
    private static func keptPrefixBytes(of operation: SimulatedOperation, random: inout SeededRandom) -> Int {
        let count = operation.bytes.count
        let sector = operation.file!.sectorSizeBytes
        let start = Int(operation.offset)
        // Sector boundaries inside the write, then its end.
        var boundaries: [Int] = []
        var boundary = (start / sector + 1) * sector
        while boundary < start + count {
            boundaries.append(boundary - start)
            boundary += sector
        }
        boundaries.append(count)
        return boundaries[Int(random.integer(in: 0...Int64(boundaries.count - 1)))]
    }
}

extension SimulatedDisk {
    /// Writes `bytes` into the page cache of `file`, or returns the errno the write fails with
    /// (injected, EINVAL for a negative offset, EFBIG or ENOSPC) and changes nothing.
    func performWrite(_ file: SimulatedFile, at offset: Int64, _ bytes: UnsafeRawBufferPointer) -> Int32? {
        if let injected = takeInjectedFailure(for: .write) { return injected }
        guard offset >= 0 else { return Errno.invalid }
        let end = offset + Int64(bytes.count)
        guard end <= Int64(file.capacityBytes) else { return simulatedErrnoFileTooBig }
        if let growth = growthError(file, toLength: Int(end)) { return growth }
        file.write(at: Int(offset), bytes)
        return nil
    }

    /// Makes `directory`'s entries durable, or returns the injected errno and changes nothing.
    func performDirectorySync(_ directory: SimulatedDirectory) -> Int32? {
        if let injected = takeInjectedFailure(for: .syncDirectory) { return injected }
        directory.sync()
        return nil
    }

    /// Makes the page cache of `file` stable, or returns the injected errno and changes nothing.
    func performDatasync(_ file: SimulatedFile) -> Int32? {
        if let injected = takeInjectedFailure(for: .datasync) { return injected }
        file.sync()
        return nil
    }
}
