// KeelClient: see docs/architecture.md.
