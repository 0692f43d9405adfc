// Tests for KeelRaft are added with the module.
