"""Helpers shared by the test packages, one module per concept (imported, not fixtures)."""
