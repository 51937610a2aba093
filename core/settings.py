"""The one place that reads the environment.

Every process (web, worker, tooling) builds a `Settings` once; tests build their own
with overrides instead of patching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from limits import parse as parse_rate_limit
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env" if Path(".env").is_file() else None,
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,  # a start-up error must not print REDIS_URL's or a key's secret
    )

    # Redis
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis (or Valkey) URL: redis:// or rediss://")
    redis_ssl_cert_reqs: Literal["required", "optional", "none"] = Field(
        "required", description="Certificate check for rediss:// URLs; 'none' for Heroku's self-signed certificates"
    )
    redis_socket_timeout: float = Field(3.0, gt=0, description="Seconds before a Redis command is given up")
    redis_connect_timeout: float = Field(2.0, gt=0, description="Seconds before a Redis connect is given up")

    # Job defaults and limits
    job_max_timeout: int = Field(3600, ge=1, description="Largest run-time limit a client may ask for (s)")
    job_max_retries: int = Field(10, ge=0, description="Largest retry count a client may ask for")
    retry_backoff_base: int = Field(5, ge=1, description="First retry interval (s); doubles each attempt")
    retry_backoff_max: int = Field(600, ge=1, description="Cap on one retry interval (s)")
    result_ttl: int = Field(86400, ge=1, description="Seconds a finished job and its result are kept")
    failure_ttl: int = Field(7 * 86400, ge=1, description="Seconds a failed, stopped or canceled job is kept")
    progress_max_messages: int = Field(50, ge=1, le=10000, description="Newest progress messages kept per job")
    progress_max_message_chars: int = Field(500, ge=16, description="Longest progress message kept (characters)")
    max_description_chars: int = Field(500, ge=1, description="Longest job description accepted")

    # HTTP
    max_body_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Largest request body accepted (room for MAX_STRING_CHARS of UTF-8)"
    )
    max_batch_jobs: int = Field(10_000, ge=1, description="Most members one POST /batches may submit")

    # Logging
    log_level: str = Field("INFO", description="Python logging level for web and workers")

    # -- job control --
    job_max_delay: int = Field(30 * 86400, ge=1, description="Furthest ahead a job may be scheduled (delay/run_at, s)")
    idempotency_ttl: int = Field(86400, ge=1, description="Seconds an Idempotency-Key is remembered")
    job_stop_grace: float = Field(
        1.0, ge=0, le=60, description="Seconds a job asked to stop may take to stop itself before it is killed"
    )

    # -- operations --
    dashboard_username: str = Field("", description="HTTP basic auth user for /dashboard (with DASHBOARD_PASSWORD)")
    dashboard_password: SecretStr = Field(
        SecretStr(""), description="HTTP basic auth password for /dashboard; unset with API_KEYS set disables it"
    )
    metrics_token: SecretStr = Field(SecretStr(""), description="Bearer token /metrics requires; empty: no token")
    readyz_timeout: float = Field(1.0, gt=0, description="Seconds /readyz waits for Redis before answering 503")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="Log lines as JSON or text; auto: JSON on Heroku/Render (DYNO/RENDER set), else text"
    )
    dyno: str = Field("", description="Set by Heroku on every dyno (read to pick JSON logs)")
    render: str = Field("", description="Set by Render on every service (read to pick JSON logs)")

    # -- security and limits --
    api_keys: str = Field(
        "",
        description="Comma-separated name=key entries (key may be sha256:<hex>); empty = open service (warned)",
    )
    admin_keys: str = Field("", description="Comma-separated names from API_KEYS whose keys see every job")
    rate_limit: str = Field("", description="Submissions per key and window, e.g. '60/minute'; empty = unlimited")
    max_active_jobs: int = Field(0, ge=0, description="Queued+scheduled+deferred+started jobs per key; 0 = unlimited")
    max_json_depth: int = Field(32, ge=2, le=500, description="Deepest JSON nesting accepted in a request body")
    max_string_chars: int = Field(
        4_000_000, ge=16, description="Longest JSON string (key or value) accepted in a body: a whole book"
    )
    cors_origins: str = Field("", description="Comma-separated browser origins allowed by CORS; empty = none")

    @field_validator("job_max_memory", mode="before")
    @classmethod
    def _empty_means_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("rate_limit")
    @classmethod
    def _rate_limit_parses(cls, value: str) -> str:
        if value.strip():
            parse_rate_limit(value)  # raises ValueError naming the bad item
        return value.strip()

    # -- live progress and callbacks --
    output_max_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Newest bytes of a job's streamed output kept (UTF-8); older output is dropped",
    )
    sse_keepalive: float = Field(
        15.0, gt=0, le=15, description="Seconds between keep-alive comments on a quiet event stream (at most 15)"
    )
    callback_secret: SecretStr = Field(
        SecretStr(""), description="Key of the callbacks' HMAC-SHA256 signature; callback_url is refused while unset"
    )
    callback_max_attempts: int = Field(10, ge=1, le=30, description="Delivery attempts, the first included")
    callback_backoff_base: int = Field(2, ge=1, le=5, description="Seconds before the first retry; doubles each retry")
    callback_backoff_max: int = Field(600, ge=1, description="Cap on one interval between delivery attempts (s)")
    callback_timeout: float = Field(10.0, gt=0, le=60, description="Seconds one delivery attempt may take")
    callback_allow_private: bool = Field(
        False, description="Allow callbacks to loopback, private, link-local and metadata addresses (tests, intranets)"
    )

    # -- reliability --
    abandoned_job_timeout: float = Field(
        60,
        ge=3,
        le=120,
        description="Seconds within which a job whose worker died is retried (retries left) or failed",
    )
    worker_shutdown_grace: float = Field(
        20,
        ge=0,
        le=300,
        description="Seconds a running job may take to finish after a worker's SIGTERM before it is requeued",
    )
    job_max_memory: int | None = Field(
        None,
        ge=16,
        description="Megabytes a job may allocate on top of the worker's own footprint; unset = no limit",
    )
    job_modules: str = Field(
        "", description="Comma-separated extra modules to import at start-up; each registers job types"
    )
    rq_version_check: Literal["on", "off"] = Field(
        "on",
        description="off = start even on an RQ or redis-py the RQ adapter was not verified against (logged)",
    )
    worker_test_pause_after_dequeue: float = Field(
        0,
        ge=0,
        description="TEST HOOK: seconds a worker waits between taking a job and starting it; leave 0 in production",
    )

    # -- performance --
    worker_concurrency: int = Field(
        20,
        ge=1,
        le=1000,
        description="Jobs one worker process runs at once (async jobs on its event loop, sync jobs in threads); "
        "1 = one forked work horse per job (needed for JOB_MAX_MEMORY and hard kills)",
    )

    # -- flow control --
    type_concurrency: str = Field(
        "", description="Comma-separated type=N: at most N jobs of that type running at once, across all workers"
    )
    type_rate_limit: str = Field(
        "", description="Comma-separated type=N/second|minute|hour: at most N starts of that type per window"
    )
    key_concurrency: str = Field("", description="At most N running jobs per owner (API key name); empty = no limit")
    fair_turns: bool = Field(True, description="Owners take turns within a queue; false = oldest startable job first")

    # -- periodic schedules --
    schedule_misfire_grace: float = Field(
        300,
        ge=0,
        description="Seconds a schedule's newest missed due time may be old and still give one catch-up run",
    )
    max_schedules: int = Field(10000, ge=1, description="Schedules one API key may keep")

    # -- high availability (Sentinel) --
    redis_sentinels: str = Field(
        "",
        description="Comma-separated host:port of Redis Sentinels; set, the primary is found through them "
        "(REDIS_URL then gives only the data nodes' user, password, database and TLS)",
    )
    redis_sentinel_master: str = Field("", description="The service name the Sentinels monitor (with REDIS_SENTINELS)")
    redis_sentinel_password: SecretStr = Field(
        SecretStr(""), description="Password of the Sentinels themselves (their requirepass); empty: none"
    )
    redis_min_replicas_ack: int = Field(
        0, ge=0, description="Replicas that must hold a submission before it is answered (WAIT); 0 = do not wait"
    )
    redis_replicas_ack_timeout: float = Field(
        1.0, gt=0, description="Seconds a submission waits for REDIS_MIN_REPLICAS_ACK replicas before a 503"
    )

    @field_validator("redis_sentinels")
    @classmethod
    def _sentinels_parse(cls, value: str) -> str:
        sentinel_addresses(value)  # raises ValueError naming the bad entry
        return value.strip()

    @model_validator(mode="after")
    def _sentinel_settings_agree(self) -> Settings:
        if self.redis_sentinel_master and not self.redis_sentinels:
            raise ValueError("REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is empty: name the Sentinels")
        if self.redis_sentinels and not self.redis_sentinel_master.strip():
            raise ValueError("REDIS_SENTINELS is set but REDIS_SENTINEL_MASTER is empty: name the monitored service")
        if self.redis_min_replicas_ack and self.redis_replicas_ack_timeout >= self.redis_socket_timeout:
            raise ValueError(
                "REDIS_REPLICAS_ACK_TIMEOUT must be shorter than REDIS_SOCKET_TIMEOUT "
                f"({self.redis_replicas_ack_timeout} >= {self.redis_socket_timeout}): the wait would end as a timeout"
            )
        return self


def sentinel_addresses(spec: str) -> list[tuple[str, int]]:
    """`host:port,host:port` (IPv6 as `[::1]:26379`) as pairs; a ValueError names the first bad entry."""
    addresses = []
    for entry in (part.strip() for part in spec.split(",")):
        if not entry:
            continue
        host, colon, port = entry.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"REDIS_SENTINELS: {entry!r} is not host:port (e.g. sentinel-1:26379)")
        addresses.append((host, int(port)))
    if spec.strip() and not addresses:
        raise ValueError("REDIS_SENTINELS names no host:port")
    return addresses


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
