@_exported import KeelCore
