"""CLI commands beyond `serve`, one module each; every module registers on `shoppulse.cli.app`."""
