"""The concurrent worker's heartbeats, and the check that it still holds every job it runs."""

from __future__ import annotations

from rq.utils import as_text, now

from core.rqadapter.claims import Claims
from workers.outcomes import OutcomeRecorderMixin


class RunningHeartbeatMixin(OutcomeRecorderMixin):
    def _heartbeat_interval(self) -> float:
        return float(max(1, min(self.job_monitoring_interval, self.worker_ttl // 3)))

    def _heartbeat_running(self) -> None:
        """RQ's `maintain_heartbeats` for the worker and every running execution, and a check that every
        running job is still claimed by this worker, in one round trip, with the executions not written
        yet (a heartbeat extends them; `_finish` deletes those of jobs found recovered elsewhere)."""
        fresh = self._unrecorded()
        ids = list(self.running)
        with self.connection.pipeline() as pipe:
            self._queue_records(pipe, fresh)
            self.heartbeat(max(self.worker_ttl, self.job_monitoring_interval) + 60, pipeline=pipe)
            moment = now()
            for running in self.running.values():
                job = running.job
                working = (moment - job.started_at).total_seconds() if job.started_at else 0.0
                ttl = max(60, int(self.get_heartbeat_ttl(job, working_time=working)))
                if running.record_sent:  # never one given up on before it was written
                    running.execution.heartbeat(job.started_job_registry, ttl, pipeline=pipe)
                job.heartbeat(moment, ttl, pipeline=pipe, xx=True)
            if ids:
                Claims.owners_in(pipe, ids)
            replies = pipe.execute()
        for running in fresh:
            running.recorded = True
        if ids:
            self._abandon_lost_claims(ids, replies[-1])

    def _abandon_lost_claims(self, job_ids: list[str], owners: list[bytes | None]) -> None:
        """Cancel the running jobs another worker now holds (this worker was presumed dead): their outcome
        is never recorded here."""
        for job_id, owner in zip(job_ids, owners, strict=True):
            held = self.running.get(job_id)
            if held is not None and owner is not None and as_text(owner) != self.name:
                self.log.error("Worker %s: job %s was recovered elsewhere; abandoning it here", self.name, job_id)
                self._cancel(held, "claim lost")
