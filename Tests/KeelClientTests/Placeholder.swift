// Tests for KeelClient.
