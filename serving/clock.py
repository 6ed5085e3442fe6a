"""The wall clock, in the unit every timestamp here uses: Unix epoch milliseconds."""

from __future__ import annotations

import time


def now_ms() -> int:
    """Wall-clock time in Unix epoch milliseconds."""
    return int(time.time() * 1000)
