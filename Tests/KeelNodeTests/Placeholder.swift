// Tests for KeelNode.
