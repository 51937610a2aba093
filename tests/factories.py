"""Payload factories for `POST /jobs`."""

from __future__ import annotations

from typing import Any


def steps_job(steps: int = 3, delay: float = 0.0, **options: Any) -> dict[str, Any]:
    args = {"steps": steps, "delay": delay}
    args.update(options.pop("args", {}))
    return {"type": "demo.steps", "args": args, **options}


def noop_job(**options: Any) -> dict[str, Any]:
    return {"type": "demo.noop", **options}
