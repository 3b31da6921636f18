"""Imports every command module so that its commands register on the CLI app."""

# ruff: noqa: I001 (one import line per module keeps additions conflict-free)

# One import per command module, sorted.
from shoppulse.commands import dashboard  # noqa: F401
from shoppulse.commands import quarantine  # noqa: F401
from shoppulse.commands import recompute  # noqa: F401
from shoppulse.commands import reconcile  # noqa: F401
from shoppulse.commands import settings  # noqa: F401
from shoppulse.commands import simulate  # noqa: F401
from shoppulse.commands import sources  # noqa: F401
from shoppulse.commands import sql  # noqa: F401
