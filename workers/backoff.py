"""The one doubling delay of the workers: waits for Redis, idle polls, scheduler restarts."""

from __future__ import annotations


class Backoff:
    """A delay that starts at `first` and doubles at each `next()`, up to `cap`; `reset()` starts over."""

    def __init__(self, first: float, cap: float) -> None:
        self.first = first
        self.cap = cap
        self.delay = first

    def next(self) -> float:
        """The delay to wait now; the one after is twice as long (at most `cap`)."""
        current = self.delay
        self.delay = min(self.delay * 2, self.cap)
        return current

    def reset(self) -> None:
        self.delay = self.first
