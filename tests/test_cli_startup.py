"""`shoppulse --help` stays fast: no help page loads the data stack the commands use when they run.

Each check runs a fresh interpreter, since this test process has long imported everything.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

#: What a help page has no use for: the data stack, the web stack and the NATS client (an
#: optional extra: without it, help must still work).
HEAVY = ("polars", "duckdb", "fastapi", "pyarrow", "streamlit", "numpy", "nats", "uvicorn")

#: The `shoppulse` command, run by this interpreter.
CLI = "from shoppulse.cli import main; main()"
#: Shows every help page in one interpreter, then prints the heavy libraries it imported.
EVERY_HELP_PAGE = f"""
import json, sys
import typer.main
from shoppulse.cli import app

def walk(group, prefix):
    for name, command in group.commands.items():
        yield [*prefix, name]
        if hasattr(command, "commands"):
            yield from walk(command, [*prefix, name])

root = typer.main.get_command(app)
pages = [[], *walk(root, [])]
for words in pages:
    code = root.main([*words, "--help"], prog_name="shoppulse", standalone_mode=False)
    assert code == 0, (words, code)
print(json.dumps({{"pages": len(pages), "heavy": [m for m in {HEAVY!r} if m in sys.modules]}}))
"""


def test_help_imports_no_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", CLI, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "Usage: " in done.stdout and "serve" in done.stdout
    imported = {
        match.group(1).split(".")[0]
        for match in re.finditer(r"^import time:.*\|\s*([\w.]+)$", done.stderr, re.MULTILINE)
    }
    assert "typer" in imported  # the timing worked
    assert sorted(imported & set(HEAVY)) == []


def test_no_help_page_imports_a_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", EVERY_HELP_PAGE], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["pages"] > 20  # every command and subcommand was shown
    assert result["heavy"] == []
