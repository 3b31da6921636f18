"""Imports every command module so that its commands register on the CLI app."""

# One import per command module, sorted.
from shoppulse.commands import recompute  # noqa: F401
from shoppulse.commands import settings  # noqa: F401
from shoppulse.commands import simulate  # noqa: F401
