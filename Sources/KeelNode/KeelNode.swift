// KeelNode: see docs/architecture.md.
