// Tests for KeelStorageSpec are added with the module.
