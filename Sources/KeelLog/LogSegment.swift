import KeelCore

/// One open, mapped segment file.
struct LogSegment {
    let start: LogPosition
    let name: String
    let file: FileID
    /// The whole file mapped writable (mapped-copy appends), or nil with the pwrite method.
    let writable: UnsafeMutableRawBufferPointer?
    /// The whole file mapped for reading (the same mapping as `writable` when there is one).
    let readable: UnsafeRawBufferPointer

    /// The first data byte (position `start`).
    var data: UnsafeRawPointer { readable.baseAddress! + LogFormat.segmentHeaderRegionBytes }
    /// The first data byte, writable (mapped-copy only).
    var writableData: UnsafeMutableRawPointer { writable!.baseAddress! + LogFormat.segmentHeaderRegionBytes }

    /// The file offset of `position`, which must lie in this segment.
    func fileOffset(of position: LogPosition) -> Int64 {
        Int64(LogFormat.segmentHeaderRegionBytes) + position.bytes(since: start)
    }

    /// Creates a new segment file: preallocates it, writes and fdatasyncs its header, makes the
    /// directory entry durable, then maps it. Nothing is ever written into a segment whose header
    /// is not durable, which is what lets recovery treat a bad last header as a torn creation.
    static func create<S: Storage>(
        storage: S, start: LogPosition, configuration: LogConfiguration
    ) throws(LogError) -> LogSegment {
        let name = LogFormat.segmentFileName(start: start)
        let fileBytes = Int64(LogFormat.segmentHeaderRegionBytes) + configuration.segmentLengthBytes
        do throws(IOError) {
            let file = try storage.openFile(name, create: true)
            do throws(IOError) {
                try storage.preallocate(file, bytes: fileBytes)
                var header = [UInt8](repeating: 0, count: LogFormat.segmentHeaderBytes)
                header.withUnsafeMutableBytes { raw in
                    SegmentHeader(
                        formatVersion: UInt32(LogFormat.version), clusterID: configuration.clusterID,
                        startPosition: start, segmentLengthBytes: configuration.segmentLengthBytes
                    ).encode(into: raw)
                }
                try storage.write(file, at: 0, bytes: header)
                try storage.datasync(file)
                try storage.syncDirectory()
            } catch {
                storage.closeFile(file)
                try? storage.deleteFile(name)
                throw error
            }
            return try map(storage: storage, start: start, name: name, file: file, fileBytes: fileBytes, method: configuration.appendMethod)
        } catch { throw .storage(error) }
    }

    /// Maps an open segment file for the given append method.
    static func map<S: Storage>(
        storage: S, start: LogPosition, name: String, file: FileID, fileBytes: Int64, method: LogAppendMethod
    ) throws(IOError) -> LogSegment {
        switch method {
        case .mappedCopy:
            let writable = try storage.mapForWriting(file, bytes: Int(fileBytes))
            return LogSegment(start: start, name: name, file: file, writable: writable, readable: UnsafeRawBufferPointer(writable))
        case .pwrite:
            let readable = try storage.mapForReading(file, bytes: Int(fileBytes))
            return LogSegment(start: start, name: name, file: file, writable: nil, readable: readable)
        }
    }

    func close<S: Storage>(storage: S) {
        storage.unmap(readable)
        storage.closeFile(file)
    }
}
