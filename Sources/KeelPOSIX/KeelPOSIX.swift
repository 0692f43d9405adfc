// KeelPOSIX: see docs/architecture.md.
