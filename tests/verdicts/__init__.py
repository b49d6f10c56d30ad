"""Verdict-accuracy suite: scenarios with a known right answer on the bundled server."""
