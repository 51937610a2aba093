"""The console: a browser UI at `/console/` built on the public JSON API, and `<job-progress>`."""

from app.console.routes import routes

__all__ = ["routes"]
