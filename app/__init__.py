"""HTTP front of the job service: Starlette routes over RQ queues. Nothing here runs jobs."""
