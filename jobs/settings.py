"""The one place that reads the environment.

Every process (web, worker, tooling) builds a `Settings` once; tests build their own
with overrides instead of patching the environment.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env" if Path(".env").is_file() else None,
        extra="ignore",
        frozen=True,
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
    failure_ttl: int = Field(7 * 86400, ge=1, description="Seconds a failed job is kept")
    progress_max_messages: int = Field(50, ge=1, le=10000, description="Newest progress messages kept per job")
    progress_max_message_chars: int = Field(500, ge=16, description="Longest progress message kept (characters)")
    max_description_chars: int = Field(500, ge=1, description="Longest job description accepted")

    # HTTP
    max_body_bytes: int = Field(1024 * 1024, ge=1024, description="Largest request body accepted")

    # Logging
    log_level: str = Field("INFO", description="Python logging level for web and workers")

    # -- performance (issue 8) --
    worker_concurrency: int = Field(
        20,
        ge=1,
        le=1000,
        description="Jobs one ConcurrentWorker process runs at once (async jobs on its event loop, sync jobs in "
        "threads); 1 falls back to one forked work horse per job",
    )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()
