// KeelService: see docs/architecture.md.
