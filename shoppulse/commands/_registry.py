"""Imports every command module so that its commands register on the CLI app."""

# One import per command module, sorted.
