"""Tests of the reference server's kernels (server_under_test/ops)."""
