// KeelRaft: see docs/architecture.md.
