"""Each peer's own environment, made on first use and never the service's venv: a venv per Python peer
(`.venv-bench/<peer>`, from `bench/peers/requirements-<peer>.txt`, every package pinned; one venv each
because the peers' pins conflict: arq needs redis-py 5, the others 8) and BullMQ's `node_modules`
(`.data/bench/bullmq`, `npm ci` from the committed package.json and package-lock.json)."""

from __future__ import annotations

import filecmp
import json
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import ROOT

PEERS_DIR = ROOT / "bench" / "peers"
VENVS = ROOT / ".venv-bench"
BULLMQ_SOURCE = PEERS_DIR / "bullmq"
BULLMQ_DIR = ROOT / ".data" / "bench" / "bullmq"
STAMP = ".installed-from"


def python_env(peer: str) -> Path:
    """The bin/ folder of `peer`'s venv, (re)installed when its requirements file changed."""
    venv = VENVS / peer
    requirements = PEERS_DIR / f"requirements-{peer}.txt"
    stamp = venv / STAMP
    if not (stamp.exists() and stamp.read_text() == requirements.read_text()):
        print(f"  installing the {peer} peer into {venv.relative_to(ROOT)}", flush=True)
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(requirements)], check=True)
        stamp.write_text(requirements.read_text())
    return venv / "bin"


def node_modules() -> Path:
    """BullMQ's node_modules, installed with `npm ci` when the committed lock file changed."""
    lock = BULLMQ_SOURCE / "package-lock.json"
    installed = BULLMQ_DIR / "package-lock.json"
    modules = BULLMQ_DIR / "node_modules"
    if not (modules.is_dir() and installed.exists() and filecmp.cmp(lock, installed, shallow=False)):
        if not shutil.which("npm"):
            raise RuntimeError("npm not found (Debian: apt-get install nodejs npm): needed for the BullMQ peer")
        print(f"  installing BullMQ into {BULLMQ_DIR.relative_to(ROOT)}", flush=True)
        BULLMQ_DIR.mkdir(parents=True, exist_ok=True)
        for name in ("package.json", "package-lock.json"):
            shutil.copyfile(BULLMQ_SOURCE / name, BULLMQ_DIR / name)
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=BULLMQ_DIR, check=True)
    return modules


def versions(peer: str) -> str:
    """`name==version` of the peer's own packages (those its requirements file names first)."""
    if peer == "bullmq":
        lock = (BULLMQ_SOURCE / "package.json").read_text()
        deps = json.loads(lock)["dependencies"]
        node = subprocess.run(["node", "--version"], capture_output=True, text=True).stdout.strip()
        return ", ".join(f"{name} {version}" for name, version in deps.items()) + f" (Node {node})"
    wanted = {"saq": ["saq"], "dramatiq": ["dramatiq"], "arq": ["arq"], "taskiq": ["taskiq", "taskiq-redis"],
              "celery": ["celery", "kombu"]}[peer]  # fmt: skip
    lines = (PEERS_DIR / f"requirements-{peer}.txt").read_text().splitlines()
    pins = dict(line.split("==", 1) for line in lines if "==" in line)
    redis_py = pins.get("redis", "?")
    return ", ".join(f"{name} {pins[name]}" for name in wanted) + f" (redis-py {redis_py})"
