// Tests for KeelLog are added with the module.
