"""Local process orchestration: the embedded Redis-compatible server and `python -m stack`."""
