"""`check_rq_version(Settings())`: the start-up refusal of an RQ or redis-py the adapter was not verified against."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from core.rqadapter import version
from core.rqadapter.version import UnverifiedVersionError, check_rq_version
from core.settings import Settings


def installed(monkeypatch: pytest.MonkeyPatch, **versions: str | None) -> None:
    """Pretend these distributions are installed at these versions (None: not installed)."""
    real = version.installed_version
    monkeypatch.setattr(version, "installed_version", lambda name: versions[name] if name in versions else real(name))


@pytest.fixture(autouse=True)
def check_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(version.OVERRIDE, raising=False)


def test_the_pinned_versions_are_verified(caplog: pytest.LogCaptureFixture) -> None:
    """requirements.txt pins what `VERIFIED` lists: the real installation passes, silently."""
    with caplog.at_level(logging.WARNING):
        check_rq_version(Settings())
    assert version.mismatches() == []
    assert caplog.records == []


def test_an_unverified_rq_is_refused_with_both_versions_and_the_override(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, rq="3.1.0")
    with pytest.raises(UnverifiedVersionError) as raised:
        check_rq_version(Settings())
    message = str(raised.value)
    assert "rq 3.1.0 (verified: 3.0.0)" in message
    assert "RQ_VERSION_CHECK=off" in message
    assert [m.distribution for m in raised.value.mismatches] == ["rq"]


def test_an_unverified_redis_py_is_refused_too(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, redis="9.0.0")
    with pytest.raises(UnverifiedVersionError, match=r"redis 9\.0\.0 \(verified: 8\.1\.0\)"):
        check_rq_version(Settings())


def test_a_missing_distribution_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, rq=None)
    with pytest.raises(UnverifiedVersionError, match=r"rq \(not installed\)"):
        check_rq_version(Settings())


def test_every_mismatch_is_named_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, rq="2.6.1", redis="5.0.0")
    with pytest.raises(UnverifiedVersionError) as raised:
        check_rq_version(Settings())
    assert [(m.distribution, m.installed) for m in raised.value.mismatches] == [("rq", "2.6.1"), ("redis", "5.0.0")]


@pytest.mark.parametrize("value", ["off"])
def test_the_override_starts_anyway_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, value: str
) -> None:
    installed(monkeypatch, rq="3.1.0")
    monkeypatch.setenv(version.OVERRIDE, value)
    with caplog.at_level(logging.WARNING, logger=version.__name__):
        check_rq_version(Settings())
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    assert "RQ_VERSION_CHECK=off" in record.getMessage() and "rq 3.1.0 (verified: 3.0.0)" in record.getMessage()


def test_the_override_warns_even_when_the_versions_are_verified(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(version.OVERRIDE, "off")
    with caplog.at_level(logging.WARNING, logger=version.__name__):
        check_rq_version(Settings())
    [record] = caplog.records
    assert record.levelno == logging.WARNING and "check is disabled" in record.getMessage()


def test_on_is_the_explicit_default(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, rq="3.1.0")
    monkeypatch.setenv(version.OVERRIDE, "on")
    with pytest.raises(UnverifiedVersionError):
        check_rq_version(Settings())


def test_a_mistyped_override_is_refused_not_taken_as_off(monkeypatch: pytest.MonkeyPatch) -> None:
    installed(monkeypatch, rq="3.1.0")
    monkeypatch.setenv(version.OVERRIDE, "false")
    with pytest.raises(ValidationError, match="rq_version_check"):
        check_rq_version(Settings())
