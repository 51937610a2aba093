"""Reliability fixtures: the integration ones, plus the test-only job types and a short recovery bound."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import TEST_ENV, rclient, redis_server_url, redis_url  # noqa: F401
from tests.support.procs import ProcessFactory, web_process

#: Seconds within which the tests expect an abandoned job to be handled (short, so the suite is quick).
ABANDONED_JOB_TIMEOUT = 6.0

RELIABILITY_ENV = {
    **TEST_ENV,
    "ABANDONED_JOB_TIMEOUT": str(ABANDONED_JOB_TIMEOUT),
    "JOB_MODULES": "tests.reliability.jobs",
}


@pytest.fixture
def procs(redis_url: str, tmp_path: Path) -> Iterator[ProcessFactory]:  # noqa: F811
    factory = ProcessFactory(redis_url, tmp_path, RELIABILITY_ENV)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def web_url(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # noqa: F811
    with web_process(redis_server_url, tmp_path_factory.mktemp("web"), RELIABILITY_ENV) as url:
        yield url


@pytest.fixture
def api(web_url: str, redis_url: str) -> Iterator[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=web_url, timeout=10) as client:
        yield client


#: The Procfile's worker in its two modes: one forked work horse per job, and many jobs per process.
WORKER_MODES = {"forking": "1", "concurrent": "20"}


@pytest.fixture(params=list(WORKER_MODES), ids=list(WORKER_MODES))
def worker_mode(request: pytest.FixtureRequest, procs: ProcessFactory) -> str:
    """Every worker `procs` starts in this test runs in the parametrized mode (`WORKER_CONCURRENCY`)."""
    mode: str = request.param
    procs.env["WORKER_CONCURRENCY"] = WORKER_MODES[mode]
    return mode


@pytest.fixture
def forking(procs: ProcessFactory) -> None:
    """Work-horse behaviour (horse kills, SIGALRM, JOB_MAX_MEMORY) needs one forked horse per job."""
    procs.env["WORKER_CONCURRENCY"] = "1"
