"""Imports every job module so that `registry` holds all job types. Import the registry from here."""

from jobs import callbacks, demo, text  # noqa: F401  (registers callbacks.*, demo.*, text.*)
from jobs.registry import registry

__all__ = ["registry"]
