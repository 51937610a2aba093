"""Job types only the output bench registers (`JOB_MODULES=bench.output_jobs`, web and worker)."""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs import report, write_output
from jobs.registry import job_type


class PacedArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(100, ge=1, le=1_000_000)
    rate: float = Field(1000, gt=0, le=100_000, description="Chunks a second, paced on a fixed schedule")
    start_after: float = Field(0, ge=0, le=60, description="Seconds to wait before the first chunk")
    write: bool = Field(True, description="False: the same loop without the output, as the baseline")
    stamped: bool = Field(False, description="Each chunk is the wall-clock time of its write_output call")


@job_type(
    "bench.paced_output",
    args=PacedArgs,
    description="Write `count` chunks at `rate` a second (or only pace the loop), progress at each percent",
    timeout=600,
)
def paced_output(
    count: int = 100, rate: float = 1000, start_after: float = 0, write: bool = True, stamped: bool = False
) -> dict[str, Any]:
    time.sleep(start_after)
    began = time.monotonic()
    reported = 0
    for i in range(1, count + 1):
        pause = began + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        if write:
            write_output(f"{time.time():.6f} " if stamped else f"tok{i} ")
        percent = i * 100 // count
        if percent > reported:
            reported = percent
            report(percent)
    return {"chunks": count, "seconds": round(time.monotonic() - began, 3)}
