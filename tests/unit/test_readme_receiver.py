"""The README's 10-line callback receiver really accepts a signed body and refuses anything else."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from core import signature
from stack.redis_server import free_port

README = Path(__file__).resolve().parents[2] / "docs" / "API.md"


def receiver_source() -> str:
    blocks: list[str] = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    [source] = [block for block in blocks if "BaseHTTPRequestHandler" in block]
    assert len([line for line in source.splitlines() if line.strip()]) <= 11  # a ~10-line receiver
    return source


def test_the_readme_receiver_verifies_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CALLBACK_SECRET", "readme-secret")
    port = free_port()
    source = receiver_source().replace('HTTPServer(("", 8080), Hook).serve_forever()', "")
    namespace: dict[str, Any] = {}
    exec(compile(source, "README receiver", "exec"), namespace)
    server = namespace["HTTPServer"](("127.0.0.1", port), namespace["Hook"])
    server.RequestHandlerClass.log_message = lambda *args: None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        body = b'{"id":"1","status":"finished"}'
        url = f"http://127.0.0.1:{port}/hook"
        good = httpx.post(url, content=body, headers={"X-Signature": signature.sign(body, "readme-secret")})
        assert good.status_code == 204
        wrong = httpx.post(url, content=body, headers={"X-Signature": signature.sign(body, "another")})
        assert wrong.status_code == 401
        assert httpx.post(url, content=body).status_code == 401
    finally:
        server.shutdown()
        server.server_close()
