"""MLServer as a process: the ``settings.json`` that keeps it on loopback in one process, and when it is ready.

The benchmark's remote configuration and the tests both start MLServer from
its side venv; they share these so both run it the same way.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path


def server_settings(repository: Path, http_port: int, grpc_port: int, metrics_port: int) -> dict[str, object]:
    """MLServer's ``settings.json``: loopback only, inference in the server process (one process to stop)."""
    return {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,  # no worker pool: starts in seconds, one process group to kill
        "debug": False,
        "metrics_dir": str(repository / ".metrics"),
        "environments_dir": str(repository / ".envs"),
    }


def serves_every_model(base_url: str, repository: Path) -> bool:
    """Whether the server at ``base_url`` is ready, and so is every model of ``repository``."""
    models = [p.parent.name for p in Path(repository).glob("*/model-settings.json")]
    return _answers(f"{base_url}/v2/health/ready") and all(_answers(f"{base_url}/v2/models/{m}/ready") for m in models)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as reply:
            return reply.status == 200
    except (urllib.error.URLError, OSError):
        return False
