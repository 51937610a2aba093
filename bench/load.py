"""HTTP load: `wrk` when installed, else a small asyncio load generator of our own (run in its
own process, keep-alive connections, same report: requests/s and latency percentiles)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit


@dataclass(frozen=True)
class LoadResult:
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


def tool_name() -> str:
    return "wrk" if shutil.which("wrk") else "python (bench/load.py)"


def run(url: str, *, seconds: float, connections: int, method: str = "GET", body: bytes | None = None) -> LoadResult:
    if shutil.which("wrk"):
        return _wrk(url, seconds, connections, method, body)
    out = subprocess.run(
        [sys.executable, "-m", "bench.load", url, str(seconds), str(connections), method, (body or b"").decode()],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return LoadResult(**json.loads(out.stdout))


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _wrk(url: str, seconds: float, connections: int, method: str, body: bytes | None) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(f'wrk.method = "{method}"\n')
        if body is not None:
            script.write(f"wrk.body = {json.dumps(body.decode())}\n")
            script.write('wrk.headers["Content-Type"] = "application/json"\n')
    try:
        out = subprocess.run(
            ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", script.name, url],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
    finally:
        Path(script.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    count = (int(bad.group(1)) if bad else 0) + (sum(int(g) for g in errors.groups()) if errors else 0)
    return LoadResult(rps, p50, p99, count, "wrk")


# -- the fallback generator ---------------------------------------------------------------


async def _connection(host: str, port: int, request: bytes, stop: float, latencies: list[float]) -> int:
    reader, writer = await asyncio.open_connection(host, port)
    errors = 0
    try:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
            await reader.readexactly(length)
            latencies.append(time.perf_counter() - started)
            if not head.startswith((b"HTTP/1.1 2", b"HTTP/1.1 3")):
                errors += 1
    finally:
        writer.close()
    return errors


async def generate(url: str, seconds: float, connections: int, method: str, body: bytes) -> LoadResult:
    parts = urlsplit(url)
    headers = (
        f"{method} {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
    )
    if body:
        headers += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    request = headers.encode() + b"\r\n" + body
    latencies: list[float] = []
    started = time.perf_counter()
    stop = started + seconds
    errors = await asyncio.gather(
        *[
            _connection(parts.hostname or "127.0.0.1", parts.port or 80, request, stop, latencies)
            for _ in range(connections)
        ]
    )
    elapsed = time.perf_counter() - started
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [latencies[0] if latencies else 0.0] * 99
    return LoadResult(len(latencies) / elapsed, cuts[49] * 1000, cuts[98] * 1000, sum(errors), "python")


def latency_ms(url: str, requests: int) -> float:
    """Median latency of `requests` sequential requests on one keep-alive connection (no server queueing)."""

    async def measure() -> float:
        parts = urlsplit(url)
        path = f"{parts.path}{'?' + parts.query if parts.query else ''}"
        request = f"GET {path} HTTP/1.1\r\nHost: {parts.netloc}\r\n\r\n".encode()
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        samples = []
        try:
            for _ in range(requests):
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{url}: {head[:40]!r}")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))  # type: ignore[union-attr]
                await reader.readexactly(length)
                samples.append(time.perf_counter() - started)
        finally:
            writer.close()
        return statistics.median(samples) * 1000

    return asyncio.run(measure())


if __name__ == "__main__":
    target, secs, conns, verb, payload = sys.argv[1:6]
    result = asyncio.run(generate(target, float(secs), int(conns), verb, payload.encode()))
    print(json.dumps(result.__dict__))
