"""Settings module for a stand-alone rq-dashboard: `rq-dashboard -c workers.dashboard_settings --json`.

The web process serves the dashboard at `/dashboard`; this is for running it as a service of
its own (render.yaml's optional `jobs-dashboard`). rq-dashboard reads the UPPERCASE names here;
its Redis URL comes from the same settings as web and workers, `REDIS_SSL_CERT_REQS` included.
Basic auth comes from rq-dashboard's own `RQ_DASHBOARD_USERNAME` / `RQ_DASHBOARD_PASSWORD`.
"""

from __future__ import annotations

from jobs.connection import url_with_tls_options
from jobs.settings import get_settings

RQ_DASHBOARD_REDIS_URL = url_with_tls_options(get_settings())
