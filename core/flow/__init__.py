"""Flow control: limits per job type and per owner, and owners' turns within a queue, decided when a worker
claims a job (`core.rqadapter.flow_scripts`).

- `limits`: the settings and the job types' declared limits, parsed once (`Limits`, `FlowSettingError`);
- `keys`: the Redis keys of the fair index, the slots and the rate windows;
- `state`: the limits' state in one round trip (`read_state`), and why a queued job waits (`waiting_reason`).
"""
