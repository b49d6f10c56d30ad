"""`python -m satscope` is the same as the `satscope` command."""

from satscope.cli import main

main()
