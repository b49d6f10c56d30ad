"""Tests of the reference server's kernels (satscope/server_under_test/ops)."""
