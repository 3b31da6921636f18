"""The `shoppulse` commands, one module per command or group; `shoppulse.cli` lists them."""
