import KeelCore

/// An in-memory disk that outlives the simulated processes using it: after a process crash or a
/// power loss, the test makes a new `SimulatedStorage` on the same disk and finds what survived.
///
/// It holds directories of files. Each file keeps its page-cache bytes and its stable bytes; a
/// datasync copies the first to the second, a power loss (`powerLoss()`) drops the page cache, keeping
/// each unsynced sector or not independently, and undoes unsynced directory changes. It also flips
/// bits, fills up, and fails operations on demand. Every random choice comes from one generator
/// seeded at creation, and nothing depends on dictionary order, so the same seed and the same calls
/// give the same outcome.
///
/// Not thread-safe: the simulator drives it from one thread.
public final class SimulatedDisk {
    /// The configuration the disk was made with; `faults` and `capacityBytes` may change at any time.
    public private(set) var configuration: SimulatedDiskConfiguration
    var random: SeededRandom
    private var directories: [String: SimulatedDirectory] = [:]
    private var nextInodeNumber = 1
    private var storages: [WeakStorage] = []
    private var injectedFailure: InjectedFailure?
    /// Process crashes so far (power losses included, since one ends the process too).
    public private(set) var processCrashCount = 0
    /// Power losses so far.
    public private(set) var powerLossCount = 0

    private struct WeakStorage { weak var storage: SimulatedStorage? }

    private struct InjectedFailure {
        var remaining: Int
        let errno: Int32
        let operations: Set<IOOperation>
    }

    /// A disk whose faults are driven by `seed`.
    public init(seed: UInt64, configuration: SimulatedDiskConfiguration = SimulatedDiskConfiguration()) {
        self.configuration = configuration
        random = SeededRandom(seed: seed)
    }

    /// The disk's name, as shown in storage locations.
    public var name: String { configuration.name }

    /// What goes wrong and how often, from now on.
    public var faults: SimulatedFaultModel {
        get { configuration.faults }
        set { configuration.faults = newValue }
    }

    /// Total space for file data. Lowering it below `usedBytes` makes every growth fail with ENOSPC.
    public var capacityBytes: Int64 {
        get { configuration.capacityBytes }
        set { configuration.capacityBytes = newValue }
    }

    /// Space taken by the files in all directories (lengths rounded up to whole sectors).
    public var usedBytes: Int64 { usedBytes(excluding: nil) }

    // MARK: Faults

    /// Ends the running process: every storage on this disk stops working (its operations fail with
    /// EIO), and each of its operations still queued or in flight has happened, in part, or not, at
    /// random. The page cache survives: a new storage sees every completed write.
    public func crashProcess() {
        processCrashCount += 1
        let live = storages.compactMap(\.storage)
        storages.removeAll()
        for storage in live { storage.processCrashed(random: &random, faults: configuration.faults) }
    }

    /// Cuts the power: the process crashes (see `crashProcess()`), then the page cache is lost.
    /// Each sector changed since its file's last datasync independently keeps its new bytes, reverts
    /// to its synced bytes, or is torn (per `faults`); unsynced length changes survive or not; each
    /// directory keeps a random prefix of its changes since its last sync; random bit flips appear
    /// when `faults.bitFlipChancePerSector` is set.
    public func powerLoss() {
        crashProcess()
        losePageCache()
    }

    /// The power goes after the process already died (`crashProcess()`): the page cache is lost as
    /// in `powerLoss()`. Lets a simulation stop a process at once and apply the loss once nothing of
    /// that process runs any more (its readers would otherwise see the lost bytes vanish under them).
    public func losePageCache() {
        powerLossCount += 1
        for file in allReachableFiles() {
            file.losePageCache(random: &random, faults: configuration.faults)
        }
        for directoryName in directories.keys.sorted() {
            directories[directoryName]!.losePageCache(
                random: &random, survivalChance: configuration.faults.unsyncedDirectoryChangeSurvivalChance)
        }
    }

    /// Flips one bit of a file's byte at `offset`, in the page cache and (if that byte was ever
    /// synced) in stable storage too, so it survives a power loss. The file must exist and be longer than `offset`.
    public func flipBit(inFile name: String, directory: String = "", atOffset offset: Int64, bit: Int) {
        guard let file = directories[directory]?.entries[name] else {
            preconditionFailure("no file \(name) in directory '\(directory)' of \(self.name)")
        }
        file.flipBit(at: Int(offset), bit: bit)
    }

    /// Makes the next `count` operations of the given kinds fail with `errno` (e.g. `Errno.io`,
    /// `Errno.noSpace`) without any effect. Asynchronous operations fail when they complete.
    /// Replaces any earlier injection.
    public func failNextOperations(
        _ count: Int, errno: Int32,
        operations: Set<IOOperation> = [.write, .datasync, .preallocate, .zeroRange]
    ) {
        precondition(count >= 0, "failure count must not be negative")
        injectedFailure = InjectedFailure(remaining: count, errno: errno, operations: operations)
    }

    /// How many injected failures are still to come.
    public var pendingInjectedFailures: Int { injectedFailure?.remaining ?? 0 }

    // MARK: Inspection (tests and checkers)

    /// The names of the files in `directory`, sorted.
    public func fileNames(in directory: String = "") -> [String] {
        directories[directory]?.sortedNames ?? []
    }

    /// A file's bytes as reads see them now, or nil when there is no such file.
    public func contents(ofFile name: String, directory: String = "") -> [UInt8]? {
        directories[directory]?.entries[name]?.cachedBytes()
    }

    /// A file's bytes as stable storage holds them (what a power loss keeping no unsynced sector
    /// would leave), or nil when the current directory has no such file.
    public func stableContents(ofFile name: String, directory: String = "") -> [UInt8]? {
        directories[directory]?.entries[name]?.stableBytes()
    }

    // MARK: For SimulatedStorage

    func attach(_ storage: SimulatedStorage) {
        storages.removeAll { $0.storage == nil }
        storages.append(WeakStorage(storage: storage))
    }

    func directory(named name: String) -> SimulatedDirectory {
        if let existing = directories[name] { return existing }
        let created = SimulatedDirectory(name: name)
        directories[name] = created
        return created
    }

    func makeFile() -> SimulatedFile {
        defer { nextInodeNumber += 1 }
        return SimulatedFile(
            inodeNumber: nextInodeNumber,
            capacityBytes: configuration.fileCapacityBytes,
            sectorSizeBytes: configuration.sectorSizeBytes
        )
    }

    /// The errno growing `file` to `length` bytes would fail with (EFBIG beyond the file's capacity,
    /// ENOSPC beyond the disk's), or nil when it fits.
    func growthError(_ file: SimulatedFile, toLength length: Int) -> Int32? {
        guard length > file.cacheLengthBytes else { return nil }
        if length > file.capacityBytes { return simulatedErrnoFileTooBig }
        let needed = usedBytes(excluding: file) + allocatedBytes(forLength: length)
        return needed > configuration.capacityBytes ? Errno.noSpace : nil
    }

    /// Consumes one injected failure matching `operation`, returning its errno.
    func takeInjectedFailure(for operation: IOOperation) -> Int32? {
        guard var failure = injectedFailure, failure.remaining > 0, failure.operations.contains(operation) else {
            return nil
        }
        failure.remaining -= 1
        injectedFailure = failure.remaining > 0 ? failure : nil
        return failure.errno
    }

    private func allocatedBytes(forLength length: Int) -> Int64 {
        let sector = configuration.sectorSizeBytes
        return Int64((length + sector - 1) / sector * sector)
    }

    private func usedBytes(excluding excluded: SimulatedFile?) -> Int64 {
        var seen = Set<Int>()
        var total: Int64 = 0
        for directory in directories.values {
            for file in directory.entries.values where file !== excluded && seen.insert(file.inodeNumber).inserted {
                total += allocatedBytes(forLength: file.cacheLengthBytes)
            }
        }
        return total
    }

    /// Every file any directory refers to (now, stably, or through an unsynced creation), in inode order.
    private func allReachableFiles() -> [SimulatedFile] {
        var byInode: [Int: SimulatedFile] = [:]
        for directory in directories.values {
            for file in directory.reachableFiles { byInode[file.inodeNumber] = file }
        }
        return byInode.keys.sorted().map { byInode[$0]! }
    }
}

/// EFBIG: KeelCore's `Errno` does not name it, and only the simulator produces it.
let simulatedErrnoFileTooBig: Int32 = 27
