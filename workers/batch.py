"""Where `core.rqadapter.executions` and `core.rqadapter.bookkeeping` used to live, for the one test
module that still imports them from here (it is being replaced); nothing in the service imports this."""

from core.rqadapter.bookkeeping import record_success
from core.rqadapter.executions import expire_worker_executions, new_execution, record_execution, register_start

__all__ = ["expire_worker_executions", "new_execution", "record_execution", "record_success", "register_start"]
