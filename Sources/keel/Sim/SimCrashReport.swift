import Glibc

/// Names the seed being run when the process dies of a trap (a failed precondition inside the
/// runtime): the simulation runs in-process, so a precondition failure cannot be returned as a
/// violation. The message is prepared before each seed; the handler only writes it.
enum SimCrashReport {
    nonisolated(unsafe) static var message = UnsafeMutableRawBufferPointer.allocate(byteCount: 512, alignment: 8)
    nonisolated(unsafe) static var messageBytes = 0

    /// Installs the handler for the signals a trap or an abort raises.
    static func install() {
        for signalNumber in [SIGTRAP, SIGILL, SIGABRT, SIGSEGV, SIGBUS] {
            signal(signalNumber) { received in
                _ = write(2, SimCrashReport.message.baseAddress, SimCrashReport.messageBytes)
                signal(received, SIG_DFL)
                raise(received)
            }
        }
    }

    /// Sets the message written if the process dies now.
    static func prepare(_ text: String) {
        let bytes = Array(text.utf8.prefix(message.count))
        message.copyBytes(from: bytes)
        messageBytes = bytes.count
    }
}
