"""`python -m logstore.broker` with a kill point: the broker of tests/test_broker_crash_points.py.

Usage: python tests/hooked_broker.py BROKER_FLAGS... with LOGSTORE_TEST_KILL_POINT set to one of POINTS
and LOGSTORE_TEST_KILL_AT to which occurrence (1 = the first). When the broker reaches that point it
prints "KILL POINT <name> reached" and freezes the thread that got there (the others go on serving), so
the test's SIGKILL lands exactly inside the operation, not some time around it. Compaction runs every
100 ms instead of every 15 s, so a test reaches it within seconds.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading

import logstore.log
import logstore.manager
from logstore.log import Log
from logstore.segment import LogSegment

POINTS = {
    "roll-sealed": "a roll: the old segment trimmed and sealed, the new one not created yet",
    "roll-created": "a roll: the new segment's files created, not yet in the log",
    "compaction-cleaned": "compaction: the cleaned copy written and fsynced beside the segment, not swapped",
    "compaction-swapped": "compaction: old indexes removed and the copy renamed over the log, directory not fsynced",
}
_point = os.environ["LOGSTORE_TEST_KILL_POINT"]
_at = int(os.environ.get("LOGSTORE_TEST_KILL_AT", "1"))
_seen = 0
_lock = threading.Lock()
_inside = threading.local()


def _reached(name: str) -> None:
    global _seen
    if name != _point:
        return
    with _lock:
        _seen += 1
        if _seen != _at:
            return
    print(f"KILL POINT {name} reached", flush=True)
    threading.Event().wait()  # until SIGKILL


def _flagged(flag: str, function):
    def run(*args, **kwargs):
        setattr(_inside, flag, True)
        try:
            return function(*args, **kwargs)
        finally:
            setattr(_inside, flag, False)

    return run


_real_seal, _real_new_segment, _real_replace = LogSegment.seal, Log._new_segment, Log.replace_segment
_real_fsync_dir = logstore.log.fsync_dir


def _seal(self, *args, **kwargs):
    _real_seal(self, *args, **kwargs)
    if getattr(_inside, "roll", False):
        _reached("roll-sealed")


def _new_segment(self, *args, **kwargs):
    segment = _real_new_segment(self, *args, **kwargs)
    if getattr(_inside, "roll", False):
        _reached("roll-created")
    return segment


def _replace_segment(self, *args, **kwargs):
    _reached("compaction-cleaned")
    return _real_replace(self, *args, **kwargs)


def _fsync_dir(*args, **kwargs):
    if getattr(_inside, "replace", False):
        _reached("compaction-swapped")
    return _real_fsync_dir(*args, **kwargs)


assert _point in POINTS, f"LOGSTORE_TEST_KILL_POINT must be one of {sorted(POINTS)}"
Log._roll = _flagged("roll", Log._roll)  # type: ignore[method-assign]  # the harness patches the engine on purpose
LogSegment.seal = _seal  # type: ignore[method-assign]  # the harness patches the engine on purpose
Log._new_segment = _new_segment  # type: ignore[method-assign]  # the harness patches the engine on purpose
Log.replace_segment = _flagged("replace", _replace_segment)  # type: ignore[method-assign]  # the harness patches the engine on purpose
logstore.log.fsync_dir = _fsync_dir
_intervals = logstore.manager.Intervals


def _fast_intervals() -> logstore.manager.Intervals:
    return dataclasses.replace(_intervals(), tick_ms=20, compaction_ms=100)


logstore.manager.Intervals = _fast_intervals  # type: ignore[misc,assignment]  # a factory in the class's place

if __name__ == "__main__":
    from logstore.broker.server import main

    sys.exit(main(sys.argv[1:]))
