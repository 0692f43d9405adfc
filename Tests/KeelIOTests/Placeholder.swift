// Tests for KeelIO are added with the module.
