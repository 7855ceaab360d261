"""Named moments where a hard kill would do the most harm, and a hook for crash tests to use them.

Checkpoint saves, pointer moves and registry writes call `crash_point(name)` between the writes a
kill must never tear apart. In normal use it does nothing but read two environment variables.
The crash harness (tests/crash/, scripts/crash_soak.py) sets them:

- `PREFINE_CRASH_AT=NAME:N` makes the process SIGKILL itself the N-th time it reaches point NAME
  (N defaults to 1), so a test can land a kill exactly inside a save without any timing.
- `PREFINE_SLOW_WRITES=SECONDS` pauses at every point for that long and announces it on stderr
  (`crash-point NAME`), so kills sent from outside at random moments often land mid-write, and
  the harness can tell afterwards where each one landed.
"""

from __future__ import annotations

import os
import signal
import sys
import time

CRASH_AT_ENV_VAR = "PREFINE_CRASH_AT"
SLOW_WRITES_ENV_VAR = "PREFINE_SLOW_WRITES"

# How many times this process has reached each point, for PREFINE_CRASH_AT's count.
_arrivals: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill or pause here when a crash test asks for it (see the module docstring); else nothing."""
    crash_at = os.environ.get(CRASH_AT_ENV_VAR)
    slow = os.environ.get(SLOW_WRITES_ENV_VAR)
    if not crash_at and not slow:
        return
    _arrivals[name] = _arrivals.get(name, 0) + 1
    if slow:
        print(f"crash-point {name}", file=sys.stderr, flush=True)
        time.sleep(float(slow))
    if crash_at:
        target, _, count = crash_at.partition(":")
        if target == name and _arrivals[name] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
