"""Producers still open when the interpreter exits are closed then, so their buffered records are sent.

A program that sends and ends without ``close()`` or ``flush()`` would otherwise lose everything still
in the buffer: the sender is a daemon thread and dies with the interpreter. kafka-python registers an
``atexit`` close for the same reason. Here one handler serves every producer (registered with the first),
holds them strongly until they are closed (a producer dropped unclosed, say a local in a function that
returned, still has a live sender thread and buffered records: held weakly it would vanish from this list
and its records with it), waits a bounded time
for each (its ``request_timeout_ms``, so a dead broker cannot hang the exit), and warns once, since a
missing ``close()`` is a bug in the program worth fixing even when the records got through.

Thread-safe: producers may be created from any thread.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import Protocol

log = logging.getLogger("logstore.client.producer.api")


class Closable(Protocol):
    @property
    def closed(self) -> bool: ...

    def close(self, timeout: float | None = None) -> None: ...


_open: dict[Closable, float] = {}
"""Each open producer and how long (seconds) its close may take at exit."""
_lock = threading.Lock()
_registered = False


def track(producer: Closable, exit_timeout_s: float) -> None:
    """Close ``producer`` at interpreter exit (waiting up to ``exit_timeout_s``) unless it is closed first."""
    global _registered
    with _lock:
        _open[producer] = exit_timeout_s
        if not _registered:
            atexit.register(close_all_at_exit)
            _registered = True


def untrack(producer: Closable) -> None:
    with _lock:
        _open.pop(producer, None)


def close_all_at_exit() -> None:
    """The atexit handler: one warning, then each still-open producer closed with its bounded wait."""
    with _lock:
        pending = [(p, timeout) for p, timeout in _open.items() if not p.closed]
        _open.clear()
    if not pending:
        return
    longest = max(timeout for _, timeout in pending)
    log.warning(
        "%d Producer(s) still open at interpreter exit: closing them now to send buffered records (up to "
        "%.0f ms each, then they are lost); call producer.close() or use `with Producer(...)`",
        len(pending),
        longest * 1000,
    )
    for producer, timeout in pending:
        try:
            producer.close(timeout)
        except Exception:  # at exit nobody can catch it: say what happened and close the others
            log.exception("closing a Producer at interpreter exit failed")
