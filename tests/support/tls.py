"""A TLS-only Redis on loopback with a self-signed certificate, as Heroku Key-Value Store serves one."""

from __future__ import annotations

import subprocess
from pathlib import Path

import redis

from stack.redis_server import EmbeddedRedis


def self_signed_certificate(openssl: str, directory: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    """A fresh key and a self-signed certificate for it (valid one day); returns (certificate, key)."""
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={common_name}",
         "-addext", f"subjectAltName=DNS:{common_name},IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


class TlsRedis(EmbeddedRedis):
    """`redis-server` listening with TLS only (plain port off); clients are not asked for certificates."""

    def __init__(self, binary: str, data_dir: Path, cert: Path, key: Path) -> None:
        super().__init__(data_dir, appendonly=False)
        self.binary = binary
        self.cert = cert
        self.key = key

    @property
    def url(self) -> str:
        return f"rediss://{self.host}:{self.port}/0"

    def command(self) -> list[str]:
        return [
            self.binary,
            "--port", "0",
            "--tls-port", str(self.port),
            "--bind", self.host,
            "--tls-cert-file", str(self.cert),
            "--tls-key-file", str(self.key),
            "--tls-ca-cert-file", str(self.cert),
            "--tls-auth-clients", "no",
            "--dir", str(self.data_dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self.log_path),
        ]  # fmt: skip

    def client(self) -> redis.Redis:
        """A test-side client that trusts exactly this server's certificate (verification on)."""
        return redis.Redis.from_url(self.url, ssl_ca_certs=str(self.cert), socket_connect_timeout=1, socket_timeout=3)
