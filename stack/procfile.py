"""The Procfile's command lines, read the way Heroku and Render read them (bench and tests start them)."""

from __future__ import annotations

from pathlib import Path

PROCFILE = Path(__file__).resolve().parent.parent / "Procfile"


def procfile_command(process: str) -> str:
    """The command line of `process` in the Procfile, exactly as Heroku/Render would run it."""
    for line in PROCFILE.read_text().splitlines():
        name, _, command = line.partition(":")
        if name.strip() == process:
            return command.strip()
    raise KeyError(process)
