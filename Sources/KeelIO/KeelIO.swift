// KeelIO: see docs/architecture.md.
