"""Talking to a test HTTP service: GET with the body decoded, and waiting for a condition."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def get(url: str) -> tuple[int, dict | str]:
    """GET ``url``: the status and the body, parsed when it is JSON (error statuses too, never raised)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            body = response.read().decode()
            status = response.status
            kind = response.headers.get("content-type", "")
    except urllib.error.HTTPError as exc:
        body, status, kind = exc.read().decode(), exc.code, exc.headers.get("content-type", "")
    return status, json.loads(body) if "json" in kind else body


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Return once ``condition()`` holds, checking every 0.3 s; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")
