"""A schedule declared in code, for the integration tests (loaded through `JOB_MODULES`)."""

from jobs.schedules import periodic

periodic("it-every-second", "demo.noop", every=1, overlap=True, description="declared in code")
