"""RQ's own test suite run against the service's workers: `make conformance` (`python -m tests.conformance`)."""
