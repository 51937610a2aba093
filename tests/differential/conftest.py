"""Differential fixtures: the integration suite's real server, a database flushed before and after each test."""

from __future__ import annotations

from tests.integration.conftest import rclient, redis_server_url, redis_url  # noqa: F401
