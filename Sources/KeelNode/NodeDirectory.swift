import KeelCore
import KeelIO
import KeelRuntime

/// A node's directory: the identity fixed at its first start (`node.conf`: cluster id, member id,
/// member list, sync mode) and a lock (`flock` on `lock`) held while a node runs on it.
public struct NodeDirectory {
    /// The directory's path.
    public let path: String
    let lock: DirectoryLock

    static let fileName = "node.conf"

    /// Locks the directory and checks (or, on the first start, records) the configuration. Throws a
    /// `ConfigurationError` naming what differs, or saying another node runs on it.
    public init(path: String, configuration: ClusterConfiguration) throws(ConfigurationError) {
        self.path = path
        do {
            lock = try DirectoryLock(directory: path)
        } catch {
            if error.errno == Errno.tryAgain {
                throw ConfigurationError("directory \(path) is in use by another running node (lock held on \(path)/lock)")
            }
            throw ConfigurationError("cannot use directory \(path): \(error)")
        }
        guard SmallFile.isWritableDirectory(path) else { throw ConfigurationError("directory \(path) is not writable") }
        let expected = Self.describe(configuration)
        let file = path + "/" + Self.fileName
        let stored: String?
        do { stored = try SmallFile.read(file) } catch { throw ConfigurationError("cannot read \(file): \(error)") }
        if let stored {
            let old = Self.fields(stored)
            // The first difference in key order, so the same mismatch names the same field every run.
            for (key, value) in Self.fields(expected).sorted(by: { $0.key < $1.key }) where old[key] != value {
                throw ConfigurationError(
                    "directory \(path) was created with \(key) \(old[key] ?? "(none)"), but this start has \(key) \(value); use the original settings or a new directory")
            }
        } else {
            do { try SmallFile.writeAtomically(expected, to: file, directory: path) } catch {
                throw ConfigurationError("cannot write \(file): \(error)")
            }
        }
    }

    static func describe(_ configuration: ClusterConfiguration) -> String {
        """
        cluster-id=\(configuration.clusterName)
        id=\(configuration.selfID.rawValue)
        members=\(configuration.members.map(\.description).joined(separator: ","))
        sync=\(configuration.durability.rawValue)

        """
    }

    static func fields(_ text: String) -> [String: String] {
        var result: [String: String] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { result[String(parts[0])] = String(parts[1]) }
        }
        return result
    }

    /// Releases the lock.
    public func release() { lock.release() }
}
