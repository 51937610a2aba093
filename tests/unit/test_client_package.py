"""The client package stands alone: httpx is its only dependency, and importing it loads nothing of the service.
(rich is left out of the check: httpx itself imports it when it is installed.)"""

from __future__ import annotations

import subprocess
import sys
import tomllib

from tests.support.procs import ROOT


def test_client_depends_on_httpx_only() -> None:
    project = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    assert [dep.split(">")[0].split("=")[0] for dep in project["dependencies"]] == ["httpx"]
    assert project["scripts"] == {"jobsvc": "jobs_client.cli:main"}  # not `jobs`: a shell builtin
    assert project["optional-dependencies"] == {"cli": ["rich>=13"]}


def test_importing_the_client_loads_no_service_code() -> None:
    code = (
        "import sys, jobs_client; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'rq','redis','starlette','pydantic','jobs','app'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/", check=True).stdout
    assert out.strip() == "[]"
