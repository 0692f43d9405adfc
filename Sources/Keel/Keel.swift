// The umbrella module: `import Keel` gives a user the vocabulary, the service API, ClusterNode and
// ClusterClient.
@_exported import KeelCore
@_exported import KeelService
@_exported import KeelNode
@_exported import KeelClient
