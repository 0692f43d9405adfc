import Glibc
import KeelCore

// The one place KeelIO turns a failed system call into a typed error. Every synchronous call goes
// through these helpers so that EINTR is retried in one place and every error names its operation.

/// The calling thread's current errno.
@inline(__always)
func currentErrno() -> Int32 { errno }

/// Runs `call` until it stops failing with EINTR; returns its result or throws the errno it failed with.
/// For calls that return -1 and set errno on failure.
@inline(__always)
func retryingOnInterrupt<Result: BinaryInteger>(
    _ operation: IOOperation, subject: @autoclosure () -> String, _ call: () -> Result
) throws(IOError) -> Result {
    while true {
        let result = call()
        if result >= 0 { return result }
        let failure = errno
        if failure == EINTR { continue }
        throw IOError(operation, errno: failure, subject: subject())
    }
}

/// Turns a call that returns 0 or an errno (the CKeelShims / pthread convention) into a throw.
@inline(__always)
func throwingErrno(_ operation: IOOperation, subject: @autoclosure () -> String, _ result: Int32) throws(IOError) {
    if result != 0 { throw IOError(operation, errno: result, subject: subject()) }
}

/// Closes a descriptor, ignoring EINTR (Linux closes the descriptor even then; retrying could close
/// a descriptor another thread has just been given).
func closeDescriptor(_ descriptor: Int32) {
    _ = Glibc.close(descriptor)
}

/// The system page size in bytes.
let systemPageSizeBytes: Int = Int(sysconf(Int32(_SC_PAGESIZE)))
