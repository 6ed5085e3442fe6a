"""Talking to a test HTTP service: GET with the body decoded."""

from __future__ import annotations

import json
import urllib.error
import urllib.request


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
