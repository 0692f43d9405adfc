// Tests for KeelWire.
