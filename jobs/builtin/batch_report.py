"""Jobs a batch's end enqueues: `demo.batch_report` (an `on_complete` job) and the batch callback delivery.

Both learn their batch from `meta["completes_batch"]` (set when the batch was submitted) and read
its record (`core.batches`). The delivery freezes the batch view as the body on its first attempt,
then sends it as any completion callback is sent (`callbacks.deliver`: signed, retried, guarded),
and records how delivery went in the batch's `callback` state.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from core import batches
from core.meta import CALLBACK_BODY, CALLBACK_TARGET, COMPLETES_BATCH
from jobs import progress
from jobs.builtin import callbacks
from jobs.registry import job_type

DELIVER = "batches.deliver"


class DeliverArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    batch_id: str = Field(min_length=1, max_length=200)


def _batch_of_current_job() -> tuple[Any, str]:
    current = progress.current_job()
    if current is None:
        raise RuntimeError("this job runs in a worker, enqueued by a batch's end")
    batch_id = current.meta.get(COMPLETES_BATCH)
    if not isinstance(batch_id, str):
        raise RuntimeError(f"job {current.id} was not enqueued by a batch's end (no meta {COMPLETES_BATCH!r})")
    return current, batch_id


@job_type(
    "demo.batch_report",
    description="Report how the batch that enqueued it went: {total, finished, failed} (for on_complete)",
    on_complete_only=True,
)
def report() -> dict[str, int]:
    current, batch_id = _batch_of_current_job()
    raw = batches.read(current.connection, batch_id)
    if raw is None:
        raise RuntimeError(f"batch {batch_id} has expired")
    view = batches.batch_view(raw)
    finished = view["counts"]["finished"]
    return {"total": view["total"], "finished": finished, "failed": view["total"] - finished}


@job_type(
    DELIVER,
    args=DeliverArgs,
    description="Deliver a batch's completion callback (internal: enqueued by the batch's end)",
    queue=callbacks.QUEUE,
    internal=True,
)
def deliver(batch_id: str) -> dict[str, Any]:
    current = progress.current_job()
    if current is None:
        raise RuntimeError("batches.deliver runs in a worker")
    connection = current.connection
    if current.meta.get(CALLBACK_BODY) is None:
        raw = batches.read(connection, batch_id)
        url = raw.get(b"callback_url") if raw else None
        if raw is None or not url:
            return {
                "delivered": False,
                "attempts": progress.attempt(),
                "error": "the batch expired before its callback",
            }
        body = json.dumps(batches.batch_view(raw), separators=(",", ":"))
        current.meta.update({CALLBACK_BODY: body, CALLBACK_TARGET: url.decode()})
        current.save_meta()
    try:
        outcome = callbacks.deliver(batch_id, "finished")
    except callbacks.CallbackDeliveryError as exc:
        batches.record_callback(connection, batch_id, progress.attempt(), False, str(exc))
        raise
    batches.record_callback(
        connection, batch_id, progress.attempt(), bool(outcome.get("delivered")), outcome.get("error")
    )
    return outcome


DELIVER_FUNC = f"{__name__}.{deliver.__name__}"
