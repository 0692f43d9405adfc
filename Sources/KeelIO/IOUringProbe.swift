import CLiburing
import Glibc
import KeelCore

/// Why io_uring cannot be used here, with a one-line message saying what to change.
public struct IOUringUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    /// The cause, in a form a program can act on.
    public enum Reason: Sendable, Equatable {
        /// `kernel.io_uring_disabled` is 1 (restricted to a group) or 2 (disabled for everyone).
        case disabledBySysctl(value: Int)
        /// io_uring_setup failed with EPERM while the sysctl allows it: a seccomp profile (a
        /// container's default one) or another security module blocks the system calls.
        case blockedBySecurityPolicy
        /// io_uring_setup does not exist (ENOSYS): the kernel is too old or built without io_uring.
        case notInKernel
        /// The kernel could not give the ring memory (ENOMEM), e.g. a low locked-memory limit.
        case outOfMemory
        /// io_uring works but lacks operations Keel needs (older kernel).
        case missingOperations([String])
        /// io_uring_setup failed with another errno.
        case setupFailed(errno: Int32)
    }

    public let reason: Reason
    /// One line: what is wrong and how to fix it.
    public let message: String
    public var description: String { message }
}

/// Start-up check that io_uring is usable (DESIGN.md decision 2): a node calls `IOUringProbe.check()`
/// first and, on failure, stops with the error's `message`.
public enum IOUringProbe {
    /// Operations Keel submits through io_uring, by name, with their opcodes.
    public static let requiredOperations: [(name: String, opcode: Int32)] = [
        ("READ", Int32(IORING_OP_READ.rawValue)),
        ("WRITE", Int32(IORING_OP_WRITE.rawValue)),
        ("FSYNC", Int32(IORING_OP_FSYNC.rawValue)),
        ("TIMEOUT", Int32(IORING_OP_TIMEOUT.rawValue)),
        ("ACCEPT", Int32(IORING_OP_ACCEPT.rawValue)),
        ("CONNECT", Int32(IORING_OP_CONNECT.rawValue)),
        ("SEND", Int32(IORING_OP_SEND.rawValue)),
        ("RECV", Int32(IORING_OP_RECV.rawValue)),
    ]

    /// Where the kernel says whether io_uring is allowed (Linux 6.6 and later).
    public static let disabledSysctlPath = "/proc/sys/kernel/io_uring_disabled"

    /// Creates a small ring and checks the required operations. Throws `IOUringUnavailable` with a
    /// precise message when io_uring cannot be used.
    public static func check() throws(IOUringUnavailable) {
        var ring = io_uring()
        let result = io_uring_queue_init(8, &ring, 0)
        guard result == 0 else {
            throw diagnose(setupErrno: -result, disabledSysctl: readDisabledSysctl())
        }
        defer { io_uring_queue_exit(&ring) }
        guard let probe = io_uring_get_probe_ring(&ring) else {
            throw diagnose(missingOperations: requiredOperations.map(\.name))!
        }
        defer { io_uring_free_probe(probe) }
        let missing = requiredOperations.filter { io_uring_opcode_supported(probe, $0.opcode) == 0 }.map(\.name)
        if let unavailable = diagnose(missingOperations: missing) { throw unavailable }
    }

    /// The value of `kernel.io_uring_disabled`, or nil where the kernel has no such setting.
    public static func readDisabledSysctl() -> Int? {
        let descriptor = open(disabledSysctlPath, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { return nil }
        defer { closeDescriptor(descriptor) }
        var buffer = (UInt64(0), UInt64(0))
        let count = withUnsafeMutableBytes(of: &buffer) { Glibc.read(descriptor, $0.baseAddress, $0.count) }
        guard count > 0 else { return nil }
        let text = withUnsafeBytes(of: &buffer) { String(decoding: $0.prefix(count), as: UTF8.self) }
        return Int(text.filter { !$0.isWhitespace })
    }

    /// Explains a failed io_uring_setup from its errno and the sysctl's value (nil: no such sysctl).
    /// Pure, so that every message can be tested.
    public static func diagnose(setupErrno: Int32, disabledSysctl: Int?) -> IOUringUnavailable {
        let fix = "run `sysctl kernel.io_uring_disabled=0` as root (or set it in /etc/sysctl.d) to allow it"
        switch (setupErrno, disabledSysctl) {
        case (1, 2?), (38, 2?):
            return IOUringUnavailable(
                reason: .disabledBySysctl(value: 2),
                message: "io_uring is disabled: kernel.io_uring_disabled is 2 (disabled for all processes); \(fix)")
        case (1, 1?):
            return IOUringUnavailable(
                reason: .disabledBySysctl(value: 1),
                message: "io_uring is restricted: kernel.io_uring_disabled is 1 (only root and members of kernel.io_uring_group may use it, and this process may not); \(fix), or add this user to that group")
        case (1, _):
            return IOUringUnavailable(
                reason: .blockedBySecurityPolicy,
                message: "io_uring_setup was refused (EPERM) although kernel.io_uring_disabled allows it: a seccomp profile (a container runtime's default one blocks io_uring) or a security module forbids it; run with a seccomp profile that allows io_uring_setup, io_uring_enter and io_uring_register")
        case (38, _):
            return IOUringUnavailable(
                reason: .notInKernel,
                message: "io_uring_setup is not implemented (ENOSYS): the kernel is too old (Keel needs Linux 5.19 or newer) or built without CONFIG_IO_URING, or a seccomp profile answers ENOSYS for it")
        case (12, _):
            return IOUringUnavailable(
                reason: .outOfMemory,
                message: "io_uring_setup could not get memory for the ring (ENOMEM): raise the locked-memory limit (`ulimit -l`, LimitMEMLOCK= in systemd) or the container's memory limit")
        default:
            return IOUringUnavailable(
                reason: .setupFailed(errno: setupErrno),
                message: "io_uring_setup failed: \(errnoName(setupErrno)) (errno \(setupErrno))")
        }
    }

    /// Explains missing operations; nil when none are missing.
    public static func diagnose(missingOperations: [String]) -> IOUringUnavailable? {
        guard !missingOperations.isEmpty else { return nil }
        return IOUringUnavailable(
            reason: .missingOperations(missingOperations),
            message: "io_uring lacks operations Keel needs (\(missingOperations.joined(separator: ", "))): the kernel is too old; Keel needs Linux 5.19 or newer")
    }
}
