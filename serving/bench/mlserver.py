"""MLServer for the remote configuration: started on free loopback ports in a process group of its own.

:func:`running_mlserver` serves a model repository (``sk_train.py`` lays one
out) for the duration of a block and stops the server however the block ends.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

from serving.bench.configs import BenchError
from serving.bench.sklearn_model import SIDE_VENV, require_side_venv
from serving.ops.broker import free_port
from serving.ops.jobprocess import ProcessGroup
from serving.ops.mlserver import server_settings, serves_every_model


@contextlib.contextmanager
def running_mlserver(repository: Path, venv: Path = SIDE_VENV, timeout_s: float = 120.0) -> Iterator[str]:
    """``mlserver start repository`` until the block ends; yields its base URL once every model is ready.

    Its log is ``repository/mlserver.log``.

    Raises:
        BenchError: the venv is missing, or the server exited or was not ready within ``timeout_s``.
    """
    bin_dir = require_side_venv(venv)
    repository = Path(repository)
    http_port = free_port()
    settings = server_settings(repository, http_port, free_port(), free_port())
    (repository / "settings.json").write_text(json.dumps(settings))
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    url = f"http://127.0.0.1:{http_port}"
    server = ProcessGroup([str(bin_dir / "mlserver"), "start", str(repository)], env, repository / "mlserver.log")
    try:
        deadline = time.monotonic() + timeout_s
        while not serves_every_model(url, repository):
            code = server.exited()
            if code is not None:
                raise BenchError(f"mlserver exited with code {code}: {server.tail(1)[:300]}")
            if time.monotonic() > deadline:
                raise BenchError(f"mlserver was not ready within {timeout_s:.0f} s: {server.tail(1)[:300]}")
            time.sleep(0.2)
        yield url
    finally:
        server.stop()
