import KeelCore

/// The log-start record ("log-start"): the position the log begins at and the term of the entry
/// just before it, in a two-slot file.
enum LogStartRecord {
    static var fileName: String { "log-start" }
    static var magic: UInt32 { 0x5453_4C4B }  // "KLST"

    static func decode(_ payload: [UInt8]?) -> (LogPosition, Term) {
        guard let payload else { return (.zero, .zero) }
        return payload.withUnsafeBytes { raw in
            (LogPosition(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: Int64.self))),
             Term(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: Int64.self))))
        }
    }

    static func write<S: Storage>(_ record: inout SlottedRecordFile<S>, position: LogPosition, term: Term) throws(LogError) {
        var bytes = [UInt8](repeating: 0, count: 16)
        bytes.withUnsafeMutableBytes { raw in
            raw.storeBytes(of: position.rawValue.littleEndian, toByteOffset: 0, as: Int64.self)
            raw.storeBytes(of: term.rawValue.littleEndian, toByteOffset: 8, as: Int64.self)
        }
        try record.write(bytes)
    }
}

/// Opening a log: find and check the segments, scan every frame, tell a torn tail from corruption,
/// cut the tail, and make what remains durable (docs/log-format.md, "Recovery").
struct LogRecovery<S: Storage> {
    let storage: S
    let configuration: LogConfiguration

    struct Outcome {
        var segments: [LogSegment]
        var logStartRecord: SlottedRecordFile<S>
        var termIndex: LogTermIndex
        var report: LogRecoveryReport
    }

    private var segmentLength: Int64 { configuration.segmentLengthBytes }

    func run() throws(LogError) -> Outcome {
        let names: [String]
        do { names = try storage.listFiles() } catch { throw .storage(error) }
        var payload: [UInt8]?
        let record = try SlottedRecordFile(storage: storage, name: LogStartRecord.fileName, magic: LogStartRecord.magic, current: &payload)
        let (logStart, logStartTerm) = LogStartRecord.decode(payload)
        var report = LogRecoveryReport(
            startPosition: logStart, endPosition: logStart, lastTerm: logStartTerm,
            highestRecordedDurablePosition: logStart, cutTail: nil, removedSegments: []
        )
        var starts = names.compactMap(LogFormat.segmentStart(fileName:)).sorted()
        // Segments wholly before the log start are leftovers of an interrupted deletion.
        for start in starts where start.rawValue + segmentLength <= logStart.rawValue {
            try remove(LogFormat.segmentFileName(start: start), into: &report)
        }
        starts.removeAll { $0.rawValue + segmentLength <= logStart.rawValue }
        var (segments, tornStarts) = try openSegments(starts, logStart: logStart)
        if segments.isEmpty {
            for start in tornStarts { try remove(LogFormat.segmentFileName(start: start), into: &report) }
            tornStarts = []
            let first = LogPosition(logStart.rawValue - logStart.rawValue % segmentLength)
            segments.append(try LogSegment.create(storage: storage, start: first, configuration: configuration))
        }
        var termIndex = LogTermIndex(logStart: logStart, logStartTerm: logStartTerm)
        let scan = try scanFrames(segments, from: logStart, termIndex: &termIndex)
        report.highestRecordedDurablePosition = scan.highestDurable
        if let firstStart = tornStarts.first, scan.highestDurable.rawValue > firstStart.rawValue {
            throw .corruption(file: LogFormat.segmentFileName(start: firstStart), position: firstStart, reason: "segment header is damaged")
        }
        for start in tornStarts { try remove(LogFormat.segmentFileName(start: start), into: &report) }
        if let bad = scan.firstBad, scan.end < scan.highestDurable {
            throw .corruption(file: segments[index(of: scan.end, in: segments)].name, position: scan.end, reason: bad)
        }
        if scan.highestNonZeroEnd > scan.end {
            try zeroTail(segments, from: scan.end, to: scan.highestNonZeroEnd)
            report.cutTail = (scan.end, scan.highestNonZeroEnd.bytes(since: scan.end), scan.firstBad ?? "unknown")
        }
        // What survived a crash may still be only in the page cache: make it durable before serving
        // it — the segments' bytes and their directory entries (a segment whose creation was cut
        // between its header's sync and the directory's is whole, but its name is not yet durable).
        do {
            for segment in segments { try storage.datasync(segment.file) }
            try storage.syncDirectory()
        } catch { throw .storage(error) }
        report.endPosition = scan.end
        report.lastTerm = termIndex.lastTerm
        return Outcome(segments: segments, logStartRecord: record, termIndex: termIndex, report: report)
    }

    private func remove(_ name: String, into report: inout LogRecoveryReport) throws(LogError) {
        do { try storage.deleteFile(name) } catch { throw .storage(error) }
        report.removedSegments.append(name)
    }

    private func index(of position: LogPosition, in segments: [LogSegment]) -> Int {
        min(segments.count - 1, Int((position.rawValue - segments[0].start.rawValue) / segmentLength))
    }

    /// Opens, checks and maps the segments; a damaged header is allowed only on a suffix of them (a
    /// torn creation), whose starts are returned for removal once the scan shows nothing needs them.
    private func openSegments(_ starts: [LogPosition], logStart: LogPosition) throws(LogError) -> ([LogSegment], [LogPosition]) {
        var segments: [LogSegment] = []
        var torn: [LogPosition] = []
        let fileBytes = Int64(LogFormat.segmentHeaderRegionBytes) + segmentLength
        for start in starts {
            let name = LogFormat.segmentFileName(start: start)
            // Torn creations count: two unfinished ones can end the list (a preparation cut short
            // behind a segment whose header never became durable).
            let previous = torn.last ?? segments.last?.start
            let expected = previous.map { $0.advanced(by: segmentLength) } ?? LogPosition(logStart.rawValue - logStart.rawValue % segmentLength)
            guard start == expected else {
                throw .badSegment(file: name, reason: "expected the segment starting at \(expected.rawValue) before it; it is missing")
            }
            do {
                let file = try storage.openFile(name, create: false)
                let size = try storage.fileSize(file)
                let header = size >= Int64(LogFormat.segmentHeaderBytes)
                    ? try storage.read(file, at: 0, count: LogFormat.segmentHeaderBytes) : []
                let decoded = header.withUnsafeBytes { SegmentHeader.decode($0) }
                switch decoded {
                case .unsupportedVersion(let version):
                    storage.closeFile(file)
                    throw LogError.unsupportedVersion(file: name, version: Int(version), supported: Int(LogFormat.version))
                case .invalid:
                    storage.closeFile(file)
                    torn.append(start)
                    continue
                case .valid(let header):
                    guard torn.isEmpty else {
                        storage.closeFile(file)
                        throw LogError.corruption(file: LogFormat.segmentFileName(start: torn[0]), position: torn[0], reason: "segment header is damaged")
                    }
                    try check(header, name: name, start: start, size: size, fileBytes: fileBytes, file: file)
                }
                segments.append(try LogSegment.map(storage: storage, start: start, name: name, file: file, fileBytes: fileBytes, method: configuration.appendMethod))
            } catch let error as LogError {
                throw error
            } catch let error as IOError {
                throw .storage(error)
            } catch {
                preconditionFailure("unexpected error \(error)")
            }
        }
        return (segments, torn)
    }

    private func check(_ header: SegmentHeader, name: String, start: LogPosition, size: Int64, fileBytes: Int64, file: FileID) throws(LogError) {
        guard header.clusterID == configuration.clusterID else {
            storage.closeFile(file)
            throw .foreignCluster(file: name, clusterID: header.clusterID, expected: configuration.clusterID)
        }
        guard header.startPosition == start else {
            storage.closeFile(file)
            throw .badSegment(file: name, reason: "header says it starts at \(header.startPosition.rawValue)")
        }
        guard header.segmentLengthBytes == segmentLength else {
            storage.closeFile(file)
            throw .badSegment(file: name, reason: "segment length \(header.segmentLengthBytes), configured \(segmentLength)")
        }
        guard size >= fileBytes else {
            storage.closeFile(file)
            throw .badSegment(file: name, reason: "file is \(size) bytes, expected \(fileBytes)")
        }
    }

    struct Scan {
        var end: LogPosition
        var firstBad: String?
        var highestDurable: LogPosition
        var highestNonZeroEnd: LogPosition
    }

    /// Walks the frames from `from`; at the first bad or empty place keeps looking (at every aligned
    /// position) for valid frames beyond, whose recorded durable positions decide what the bad place means.
    private func scanFrames(_ segments: [LogSegment], from: LogPosition, termIndex: inout LogTermIndex) throws(LogError) -> Scan {
        let end = segments[segments.count - 1].start.rawValue + segmentLength
        var scan = Scan(end: from, firstBad: nil, highestDurable: from, highestNonZeroEnd: from)
        var position = from.rawValue
        while position < end {
            let segment = segments[index(of: LogPosition(position), in: segments)]
            let offset = Int(position - segment.start.rawValue)
            let remaining = Int(segmentLength) - offset
            let check = FrameCodec.check(segment.data + offset, bytesToSegmentEnd: remaining, maxFrameBytes: configuration.maxFrameBytes, availableBytes: remaining)
            switch check {
            case .valid(let occupied):
                let frame = LogFrameView(base: segment.data + offset, position: LogPosition(position))
                if frame.term < termIndex.lastTerm {
                    scan.firstBad = "term \(frame.term.rawValue) after term \(termIndex.lastTerm.rawValue)"
                } else if frame.type != .padding && frame.durablePosition.rawValue > position {
                    scan.firstBad = "frame records a durable position beyond itself"
                }
                if scan.firstBad != nil { break }
                if frame.type != .padding { scan.highestDurable = max(scan.highestDurable, frame.durablePosition) }
                termIndex.noteFrame(term: frame.term, at: frame.position)
                position += Int64(occupied)
                scan.end = LogPosition(position)
                scan.highestNonZeroEnd = scan.end
                continue
            case .empty:
                scan.firstBad = "zeros where a frame header should be"
            case .invalid(let reason):
                scan.firstBad = reason
            case .unsupportedVersion(let version):
                throw .unsupportedVersion(file: segment.name, version: Int(version), supported: Int(LogFormat.version))
            }
            break
        }
        if position < end { resync(segments, from: position, end: end, scan: &scan) }
        return scan
    }

    /// Looks at every aligned position past the first bad one for non-zero bytes and valid frames.
    private func resync(_ segments: [LogSegment], from: Int64, end: Int64, scan: inout Scan) {
        var position = from
        while position < end {
            let segment = segments[index(of: LogPosition(position), in: segments)]
            let offset = Int(position - segment.start.rawValue)
            let pointer = segment.data + offset
            let unit = pointer.loadUnaligned(as: (UInt64, UInt64, UInt64, UInt64).self)
            if unit.0 | unit.1 | unit.2 | unit.3 == 0 { position += 32; continue }
            scan.highestNonZeroEnd = LogPosition(position + 32)
            let remaining = Int(segmentLength) - offset
            if position > from,
               case .valid(let occupied) = FrameCodec.check(pointer, bytesToSegmentEnd: remaining, maxFrameBytes: configuration.maxFrameBytes, availableBytes: remaining) {
                let frame = LogFrameView(base: pointer, position: LogPosition(position))
                if frame.type != .padding && frame.durablePosition.rawValue <= position {
                    scan.highestDurable = max(scan.highestDurable, frame.durablePosition)
                }
                position += Int64(frame.type == .padding ? 32 : occupied)
                if frame.type != .padding { scan.highestNonZeroEnd = LogPosition(position) }
                continue
            }
            position += 32
        }
    }

    private func zeroTail(_ segments: [LogSegment], from: LogPosition, to: LogPosition) throws(LogError) {
        var position = from
        while position < to {
            let segment = segments[index(of: position, in: segments)]
            let pieceEnd = min(to, segment.start.advanced(by: segmentLength))
            do {
                try storage.zeroRange(segment.file, at: segment.fileOffset(of: position), bytes: pieceEnd.bytes(since: position))
                try storage.datasync(segment.file)
            } catch { throw .storage(error) }
            position = pieceEnd
        }
    }
}
