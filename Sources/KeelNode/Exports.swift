// What a user's own `main` needs besides `ClusterNode`, so that `import Keel` is enough: the
// configuration types (defined in KeelRuntime) and the system clock a `ClusterClient` runs on.
@_exported import struct KeelRuntime.ClusterConfiguration
@_exported import struct KeelRuntime.MemberEndpoint
@_exported import struct KeelRuntime.ConfigurationError
@_exported import struct KeelIO.SystemClock
