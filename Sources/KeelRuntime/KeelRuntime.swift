// KeelRuntime: see docs/architecture.md.
