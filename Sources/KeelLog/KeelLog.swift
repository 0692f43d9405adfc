// KeelLog: see docs/architecture.md.
