// Tests for KeelPOSIX.
