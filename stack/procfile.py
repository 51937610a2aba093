"""The Procfile's command lines, read the way Heroku and Render read them (bench and tests start them)."""

from __future__ import annotations

from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_processes(path: Path = PROCFILE) -> dict[str, str]:
    """Every process type of the Procfile and its command line, in the file's order."""
    processes: dict[str, str] = {}
    for line in path.read_text().splitlines():
        name, sep, command = line.partition(":")
        if sep and name.strip() and not name.lstrip().startswith("#"):
            processes[name.strip()] = command.strip()
    return processes


def procfile_command(process: str) -> str:
    """The command line of `process` in the Procfile, exactly as Heroku/Render would run it."""
    return procfile_processes()[process]
