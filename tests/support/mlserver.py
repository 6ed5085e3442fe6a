"""A real MLServer process for the tests, on free loopback ports, with models trained in its own venv.

MLServer (and its scikit-learn) lives in the side venv ``make sidevenvs``
creates, ``.cache/venvs/mlserver``: its pins clash with apache-beam's.
:func:`model_repository` trains the models there (``mlserver_train.py``);
:class:`MLServerProcess` starts the server on that repository, waits until
it is ready, and stops it (its whole process group), also when a test fails.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from serving.core.model import ModelDescriptor
from serving.ops.broker import free_port
from serving.ops.mlserver import server_settings, serves_every_model
from serving.ops.processes import die_with_parent
from serving.records.schema import DataTypeSchema
from tests.support.reference import PROJECT_ROOT

#: The side venv's bin directory (its pins clash with apache-beam's).
SIDE_BIN = PROJECT_ROOT / ".cache" / "venvs" / "mlserver" / "bin"
TRAIN = Path(__file__).with_name("mlserver_train.py")


def _require_side_venv() -> None:
    if not (SIDE_BIN / "mlserver").exists():
        raise AssertionError(f"{SIDE_BIN / 'mlserver'} is missing: run `make sidevenvs` (part of `make setup`)")


def model_repository(out_dir: Path) -> dict:
    """Train the test models in the side venv into ``out_dir`` (an MLServer model repository).

    Returns ``expected.json``: per data set the rows, and scikit-learn's own
    ``predict`` (and ``predict_proba`` with its ``classes``).
    """
    _require_side_venv()
    proc = subprocess.run(
        # -P: the script's folder must not shadow the standard library (tests/support/http.py)
        [str(SIDE_BIN / "python"), "-P", str(TRAIN), str(out_dir)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out_dir / "expected.json").read_text())


class MLServerProcess:
    """``mlserver start REPOSITORY`` on 127.0.0.1, in a process group of its own.

    The ports are chosen once, so :meth:`restart` comes back at the same URL.
    """

    def __init__(self, repository: Path) -> None:
        self.repository = Path(repository)
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.log_path = self.repository / "mlserver.log"
        self.process: subprocess.Popen | None = None
        #: Seconds the last start took, from spawn to every model ready.
        self.start_seconds = 0.0

    @property
    def url(self) -> str:
        """The server's base URL, what an ``oip`` descriptor's ``location`` holds."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 120.0) -> None:
        """Start the server and return once it and every model in the repository are ready.

        Raises:
            AssertionError: it exited or was not ready within ``timeout`` s (with its log's tail).
        """
        _require_side_venv()
        settings = server_settings(self.repository, self.http_port, self.grpc_port, self.metrics_port)
        (self.repository / "settings.json").write_text(json.dumps(settings))
        started = time.monotonic()
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(SIDE_BIN / "mlserver"), "start", str(self.repository)],
                cwd=self.repository,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group, killed as one
                preexec_fn=die_with_parent,
                env={**os.environ, "PATH": f"{SIDE_BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"mlserver exited with {self.process.returncode}:\n{self.log_tail()}")
            if serves_every_model(self.url, self.repository):
                self.start_seconds = time.monotonic() - started
                return
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"mlserver was not ready within {timeout:.0f} s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash would: no graceful shutdown."""
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout`` s; safe to call twice."""
        if self.process is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(timeout=10)
        # Workers it forked may outlive the leader for a moment: the group goes too.
        self._signal_group(signal.SIGKILL)

    def restart(self, timeout: float = 120.0) -> None:
        """Stop (if running) and start again on the same ports."""
        self.stop()
        self.start(timeout)

    def _signal_group(self, sig: int) -> None:
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, sig)  # the group id is the leader's pid (start_new_session)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"


@contextlib.contextmanager
def running_mlserver(repository: Path, timeout: float = 120.0) -> Iterator[MLServerProcess]:
    """An MLServer serving ``repository`` for the duration of the block; stopped however it ends."""
    server = MLServerProcess(repository)
    try:
        server.start(timeout)
        yield server
    finally:
        server.stop()


def oip_descriptor(location: str, data_type: str, name: str, **metadata: str) -> ModelDescriptor:
    """An ``oip`` descriptor for the model ``name`` on the server at ``location``."""
    from serving.formats.registry import set_format

    descriptor = ModelDescriptor(
        name=name, data_type=data_type, version="1", created_at=int(time.time() * 1000), metadata=metadata
    )
    descriptor.location = location
    set_format(descriptor, "oip")
    return descriptor


def numeric_schema(data_type: str, names: list[str]) -> DataTypeSchema:
    """A data type of double fields ``names``, in that order."""
    return DataTypeSchema.parse(
        {"type": "record", "name": data_type, "fields": [{"name": n, "type": "double"} for n in names]}
    )


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory) -> Iterator[tuple[MLServerProcess, dict]]:
    """A real MLServer serving the test models for one test module: ``(server, expected.json)``."""
    repo = tmp_path_factory.mktemp("mlserver")
    expected = model_repository(repo)
    with running_mlserver(repo) as server:
        yield server, expected
