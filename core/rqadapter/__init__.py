"""The one place that knows RQ's and redis-py's insides.

Everything that reads or writes RQ's Redis schema directly (job hashes, registries, queue lists,
executions), or touches a private RQ or redis-py name, lives in a module of this package. The
rest of the service goes through RQ's public API or through these modules' functions.

`tests/differential` runs RQ's own worker beside ours on the same jobs and compares what each
leaves in Redis; `version.check_rq_version()` refuses an RQ this adapter was not verified against.
"""
