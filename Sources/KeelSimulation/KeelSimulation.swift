// KeelSimulation: see docs/architecture.md.
