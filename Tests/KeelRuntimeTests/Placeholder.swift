// Tests for KeelRuntime.
