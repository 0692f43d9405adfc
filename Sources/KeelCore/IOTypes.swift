// The small types shared by the completion-based Storage and Transport protocols.

/// A file opened through a `Storage`. Only meaningful to the storage that issued it.
public struct FileID: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    public var description: String { "file#\(rawValue)" }
}

/// Chosen by the submitter of an asynchronous operation and handed back with its completion, so the
/// submitter can tell completions apart without an allocation or a closure per operation.
public struct IOToken: Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt64
    public init(_ rawValue: UInt64) { self.rawValue = rawValue }
    public var description: String { "token(\(rawValue))" }
}

/// One piece of a gather write: `count` bytes at `base`. Laid out exactly as POSIX `struct iovec`
/// (a pointer, then a size), so a buffer of them can be handed to `pwritev` as it is.
public struct IOVector {
    /// The first byte.
    public var base: UnsafeRawPointer?
    /// How many bytes.
    public var count: Int

    @inlinable
    public init(base: UnsafeRawPointer?, count: Int) {
        self.base = base
        self.count = count
    }

    /// The most pieces one gather write takes (Linux's IOV_MAX).
    public static var maximumPieces: Int { 1024 }
}

/// What kind of operation a completion or an error belongs to.
public enum IOOperation: UInt8, Sendable, CustomStringConvertible {
    case open, close, preallocate, write, read, datasync, zeroRange, delete, rename, list, syncDirectory
    case map, unmap, stat
    case accept, connect, send, receive, timeout, wake, probe
    public var description: String {
        switch self {
        case .open: "open"
        case .close: "close"
        case .preallocate: "preallocate"
        case .write: "write"
        case .read: "read"
        case .datasync: "fdatasync"
        case .zeroRange: "zero range"
        case .delete: "delete"
        case .rename: "rename"
        case .list: "list directory"
        case .syncDirectory: "fsync directory"
        case .map: "mmap"
        case .unmap: "munmap"
        case .stat: "stat"
        case .accept: "accept"
        case .connect: "connect"
        case .send: "send"
        case .receive: "receive"
        case .timeout: "timeout"
        case .wake: "wake"
        case .probe: "io_uring probe"
        }
    }
}

/// Linux errno values the portable layers need to recognise by name (Core cannot import Glibc).
public enum Errno {
    public static let noEntry: Int32 = 2          // ENOENT
    public static let io: Int32 = 5               // EIO
    public static let badFile: Int32 = 9          // EBADF
    public static let tryAgain: Int32 = 11        // EAGAIN
    public static let exists: Int32 = 17          // EEXIST
    public static let invalid: Int32 = 22         // EINVAL
    public static let noSpace: Int32 = 28         // ENOSPC
    public static let canceled: Int32 = 125       // ECANCELED
    public static let timedOut: Int32 = 62        // ETIME (io_uring timeout expiry)
    public static let brokenPipe: Int32 = 32      // EPIPE
    public static let addressNotAvailable: Int32 = 99  // EADDRNOTAVAIL
    public static let addressInUse: Int32 = 98    // EADDRINUSE
    public static let connectionReset: Int32 = 104     // ECONNRESET
    public static let connectionTimedOut: Int32 = 110  // ETIMEDOUT
    public static let connectionRefused: Int32 = 111   // ECONNREFUSED
}

/// A failed I/O operation: which operation, on what, and the errno it ended with.
public struct IOError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: IOOperation
    public var errno: Int32
    /// The file or address concerned, when known.
    public var subject: String

    public init(_ operation: IOOperation, errno: Int32, subject: String = "") {
        self.operation = operation
        self.errno = errno
        self.subject = subject
    }

    public var isNoSpace: Bool { errno == Errno.noSpace }

    public var description: String {
        let on = subject.isEmpty ? "" : " on \(subject)"
        return "\(operation) failed\(on): \(errnoName(errno)) (errno \(errno))"
    }
}

/// A short name for common errno values (Core has no strerror).
public func errnoName(_ value: Int32) -> String {
    switch value {
    case 1: "operation not permitted (EPERM)"
    case 2: "no such file or directory (ENOENT)"
    case 5: "input/output error (EIO)"
    case 9: "bad file descriptor (EBADF)"
    case 11: "resource temporarily unavailable (EAGAIN)"
    case 12: "out of memory (ENOMEM)"
    case 13: "permission denied (EACCES)"
    case 17: "file exists (EEXIST)"
    case 20: "not a directory (ENOTDIR)"
    case 21: "is a directory (EISDIR)"
    case 22: "invalid argument (EINVAL)"
    case 24: "too many open files (EMFILE)"
    case 28: "no space left on device (ENOSPC)"
    case 30: "read-only file system (EROFS)"
    case 32: "broken pipe (EPIPE)"
    case 38: "function not implemented (ENOSYS)"
    case 62: "timer expired (ETIME)"
    case 95: "operation not supported (EOPNOTSUPP)"
    case 98: "address in use (EADDRINUSE)"
    case 99: "address not available (EADDRNOTAVAIL)"
    case 104: "connection reset by peer (ECONNRESET)"
    case 110: "connection timed out (ETIMEDOUT)"
    case 111: "connection refused (ECONNREFUSED)"
    case 125: "operation canceled (ECANCELED)"
    default: "errno \(value)"
    }
}

/// The outcome of one asynchronous operation.
public struct IOCompletion: Sendable, Equatable {
    public var token: IOToken
    public var operation: IOOperation
    /// Bytes transferred (or 0) when non-negative; the negated errno when negative.
    public var result: Int32

    public init(token: IOToken, operation: IOOperation, result: Int32) {
        self.token = token
        self.operation = operation
        self.result = result
    }

    public var succeeded: Bool { result >= 0 }
    /// The error, when the operation failed.
    public var error: IOError? { result < 0 ? IOError(operation, errno: -result) : nil }
}

/// A fixed-capacity buffer completions are reaped into, allocated once at start.
/// Reaping fills it; the owner then handles every entry and calls `removeAll()`: completions are
/// collected first and handled afterwards, never handled from inside the reaping loop.
public struct IOCompletionBuffer: ~Copyable {
    private let base: UnsafeMutablePointer<IOCompletion>
    public let capacity: Int
    public private(set) var count: Int = 0

    public init(capacity: Int) {
        precondition(capacity > 0, "completion buffer capacity must be positive")
        self.capacity = capacity
        base = .allocate(capacity: capacity)
    }

    deinit { base.deallocate() }

    public var isFull: Bool { count == capacity }
    public var isEmpty: Bool { count == 0 }

    /// Appends a completion; returns false (and keeps nothing) when full.
    @discardableResult
    public mutating func append(_ completion: IOCompletion) -> Bool {
        guard count < capacity else { return false }
        (base + count).initialize(to: completion)
        count += 1
        return true
    }

    public subscript(index: Int) -> IOCompletion {
        precondition(index >= 0 && index < count, "completion index out of range")
        return base[index]
    }

    public mutating func removeAll() { count = 0 }
}
