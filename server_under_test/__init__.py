"""server_under_test."""
