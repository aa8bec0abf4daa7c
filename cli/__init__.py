"""The `stseg` command-line app and its execution backends."""
