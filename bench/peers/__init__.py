"""The service beside the queues people would otherwise pick (SAQ, Dramatiq, arq, taskiq, Celery, BullMQ),
on the same workloads and the same valkey-server: `python -m bench peers` (docs/BENCHMARKS.md).

Each peer's code runs in its own environment (`.venv-bench/<peer>`, `.data/bench/bullmq`): the modules
named `*_peer.py` and `driver.py` import nothing of the service, the others run in the service's venv.
"""
