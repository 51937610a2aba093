"""Suite-wide pytest configuration: markers follow the directory a test lives in."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if "/tests/integration/" in path or "/tests/reliability/" in path:
            item.add_marker(pytest.mark.integration)
        if "/tests/reliability/" in path:
            item.add_marker(pytest.mark.slow)
