"""The ground floor web and workers share: settings, Redis connections, keys, events, logs, queues.

`core` imports none of `app`, `jobs` or `workers`; they all import from here.
"""
