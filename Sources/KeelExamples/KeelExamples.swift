// KeelExamples: see docs/architecture.md.
