"""Worker configuration: what `rq worker -c workers.settings -w workers.worker.ServiceWorker` runs with."""
