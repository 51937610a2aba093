"""RQ's periodic clean-up, minus the part `workers.recovery` owns."""

from __future__ import annotations

from rq import worker_registration
from rq.registry import DeferredJobRegistry, FailedJobRegistry, FinishedJobRegistry, ReadyJobRegistry
from rq.utils import now
from rq.worker import BaseWorker


class RegistryCleanupMixin(BaseWorker):
    def clean_registries(self) -> None:
        """RQ's maintenance minus its StartedJobRegistry sweep: `workers.recovery` owns abandoned jobs
        (RQ's sweep would retry jobs that are still running after a long Redis outage)."""
        for queue in self.queues:
            if queue.acquire_maintenance_lock():
                for registry_class in (FinishedJobRegistry, FailedJobRegistry, DeferredJobRegistry, ReadyJobRegistry):
                    registry_class(queue=queue, job_class=self.job_class).cleanup()
                worker_registration.clean_worker_registry(queue)
                queue.release_maintenance_lock()
        self.last_cleaned_at = now()  # type: ignore[assignment]
