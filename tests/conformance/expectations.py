"""`expected.toml`, the differences RQ's tests may show against the service's workers (see `plugin.py`)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path
from typing import Any

import pytest
from variants import VARIANTS  # type: ignore[import-not-found]


class Expected:
    """`expected.toml`: test id patterns (fnmatch) per variant, each with the reason it fails there."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.entries: list[dict[str, Any]] = data.get("expected", [])
        self.refusals: list[dict[str, Any]] = data.get("refusal", [])
        self.skips: list[dict[str, Any]] = data.get("skip", [])

    @classmethod
    def load(cls, path: Path) -> Expected:
        data = tomllib.loads(path.read_text())
        for kind in ("expected", "refusal", "skip"):
            for entry in data.get(kind, []):
                if not entry.get("reason") or not entry.get("tests"):
                    raise pytest.UsageError(f"{path.name}: every [[{kind}]] needs tests and a reason: {entry}")
                unknown = set(entry.get("variants", VARIANTS)) - set(VARIANTS)
                if unknown:
                    raise pytest.UsageError(f"{path.name}: unknown variants {sorted(unknown)} in {entry}")
        return cls(data)

    @staticmethod
    def _find(entries: list[dict[str, Any]], test_id: str, variant: str) -> dict[str, Any] | None:
        for entry in entries:
            if variant in entry.get("variants", VARIANTS) and any(
                fnmatch.fnmatchcase(test_id, pattern) for pattern in entry["tests"]
            ):
                return entry
        return None

    def reason(self, test_id: str, variant: str) -> str | None:
        entry = self._find(self.entries, test_id, variant)
        return str(entry["reason"]) if entry else None

    def refusal_reason(self, test_id: str, variant: str, refusal: str | None) -> str | None:
        entry = self._find(self.refusals, test_id, variant) if refusal else None
        return str(entry["reason"]) if entry else None

    def skip_reason(self, test_id: str, variant: str) -> str | None:
        entry = self._find(self.skips, test_id, variant)
        return str(entry["reason"]) if entry else None
