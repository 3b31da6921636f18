"""CLI start-up benchmark: `shoppulse --help` against a bare interpreter, same run.

    .venv/bin/python bench/cli_startup.py                 # 20 runs of each command
    .venv/bin/python bench/cli_startup.py --runs 50

Each command runs as a fresh process, in turn with a bare `python -c pass`, so both meet the same
machine conditions. It prints each command's median wall time, its ratio to the bare interpreter,
the heavy libraries the command imported (from `-X importtime`), and how long importing
`shoppulse.cli` took. A help page should load the CLI's own code and its command-line libraries
(typer, rich), never the data stack the commands themselves use.
"""

from __future__ import annotations

import argparse
import re
import resource
import statistics
import subprocess
import sys
import time

#: Libraries a help page has no use for (each costs tens to hundreds of milliseconds).
HEAVY = ("polars", "duckdb", "fastapi", "pyarrow", "streamlit", "numpy", "nats", "uvicorn")
#: This interpreter running the `shoppulse` command, followed by its arguments.
CLI = (sys.executable, "-c", "from shoppulse.cli import main; main()")
BARE = (sys.executable, "-c", "pass")
COMMANDS: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("sql", "--help"),
    ("quarantine", "--help"),
    ("log", "init", "--help"),
)


def timed_run(command: tuple[str, ...]) -> tuple[float, float]:
    """Wall seconds from starting `command` to its exit, and the CPU seconds it used (it must
    succeed). CPU time is what a busy machine disturbs least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=60)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def imported(arguments: tuple[str, ...]) -> tuple[list[str], float]:
    """The heavy libraries `shoppulse <arguments>` imports, and the seconds `shoppulse.cli` took."""
    done = subprocess.run(
        (sys.executable, "-X", "importtime", *CLI[1:], *arguments),
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    names: set[str] = set()
    cli_us = 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+\d+ \|\s+(\d+) \|(\s*)(\S+)", line)
        if match is None:
            continue
        module = match.group(3)
        names.add(module.split(".")[0])
        if module == "shoppulse.cli":
            cli_us = int(match.group(1))
    return sorted(names & set(HEAVY)), cli_us / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (default 20)")
    options = parser.parse_args()
    timed_run(BARE)  # warm the file cache before anything is measured
    for arguments in COMMANDS:
        timed_run((*CLI, *arguments))
    bare: list[tuple[float, float]] = []
    timed: dict[tuple[str, ...], list[tuple[float, float]]] = {a: [] for a in COMMANDS}
    for run in range(options.runs):
        for arguments in COMMANDS:
            bare.append(timed_run(BARE))
            timed[arguments].append(timed_run((*CLI, *arguments)))
        print(f"\rrun {run + 1}/{options.runs}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    bare_wall = statistics.median(w for w, _ in bare)
    bare_cpu = statistics.median(c for _, c in bare)
    print(
        f"bare interpreter (python -c pass): median {bare_wall * 1000:.0f} ms wall, "
        f"{bare_cpu * 1000:.0f} ms CPU"
    )
    print(
        "| command | median wall ms | x bare | median CPU ms | x bare "
        "| import shoppulse.cli ms | heavy libraries imported |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for arguments, runs in timed.items():
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        heavy, cli_seconds = imported(arguments)
        print(
            f"| `shoppulse {' '.join(arguments)}` | {wall * 1000:.0f} | {wall / bare_wall:.1f} | "
            f"{cpu * 1000:.0f} | {cpu / bare_cpu:.1f} | {cli_seconds * 1000:.0f} | "
            f"{', '.join(heavy) or 'none'} |"
        )


if __name__ == "__main__":
    main()
