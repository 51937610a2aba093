"""Periodic schedules: when runs are due (`timing`), what is stored (`model`, `store`), and a run as
RQ's writes (`runs`). Firing them atomically is `core.rqadapter.schedule_fire`; the loop that fires
them runs in every worker (`workers.periodic`)."""
