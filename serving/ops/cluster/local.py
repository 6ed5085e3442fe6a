"""The local standalone cluster: a JobManager and TaskManagers run by the scripts of the apache-flink package.

Its conf, logs, pid files and submission records stay in one state
directory, so it never mixes with another cluster.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serving.logs import get_logger
from serving.ops.cluster.config import (
    IDENT,
    ClusterOptions,
    default_state_dir,
    flink_home,
    flink_script_environment,
    job_jars,
    jsonable,
    render_config,
    write_conf_dir,
)
from serving.ops.cluster.errors import ClusterError
from serving.ops.cluster.rest import FlinkRest
from serving.ops.processes import pid_alive, port_open, terminate
from serving.settings import environment
from serving.uris import as_uri

log = get_logger("cluster")


@dataclass(frozen=True)
class ClusterStatus:
    """Whether the local cluster runs, and what it has."""

    running: bool
    rest: str | None
    state_dir: Path
    jobmanager_pids: tuple[int, ...] = ()
    taskmanager_pids: tuple[int, ...] = ()
    overview: Mapping[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One readable line."""
        if not self.running:
            if self.jobmanager_pids or self.taskmanager_pids:
                return (
                    f"flink not answering: JobManager pids {list(self.jobmanager_pids)}, TaskManager pids "
                    f"{list(self.taskmanager_pids)}, no REST answer at {self.rest}; logs in {self.state_dir / 'log'}"
                )
            return f"flink stopped (state {self.state_dir})"
        o = self.overview
        return (
            f"flink running: rest http://{self.rest}, {o.get('taskmanagers', 0)} taskmanager(s), "
            f"{o.get('slots-available', 0)}/{o.get('slots-total', 0)} slots free, "
            f"{o.get('jobs-running', 0)} job(s) running, state {self.state_dir}"
        )


class LocalCluster:
    """A standalone cluster on this machine: one JobManager, one TaskManager (more with :meth:`add_taskmanager`).

    Everything it writes stays under ``state_dir``: ``conf/`` (FLINK_CONF_DIR),
    ``log/``, ``pid/``, ``cluster.json`` (its REST address) and
    ``submissions/`` (what each job was submitted with, for ``upgrade``).
    Idempotent: start twice, one cluster.
    """

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = Path(state_dir or default_state_dir()).resolve()

    @property
    def conf_dir(self) -> Path:
        """FLINK_CONF_DIR of the cluster."""
        return self.state_dir / "conf"

    @property
    def log_dir(self) -> Path:
        """JobManager, TaskManager and client logs."""
        return self.state_dir / "log"

    @property
    def pid_dir(self) -> Path:
        """The daemons' pid files."""
        return self.state_dir / "pid"

    @property
    def _info_file(self) -> Path:
        return self.state_dir / "cluster.json"

    def script_env(self) -> dict[str, str]:
        """The environment the pyflink/bin scripts run with: this cluster's conf, log and pid directories."""
        return flink_script_environment(self.conf_dir, self.log_dir, FLINK_PID_DIR=str(self.pid_dir))

    @property
    def rest(self) -> str | None:
        """``host:port`` of the REST API, as recorded at start; None when never started."""
        try:
            return json.loads(self._info_file.read_text())["rest"]
        except (OSError, ValueError, KeyError):
            return None

    def configure(self, options: ClusterOptions) -> Path:
        """Render the cluster's conf directory for ``options``; returns it."""
        connector, _ = job_jars()
        values = {
            "LOG_DIR": str(self.log_dir),
            "PID_DIR": str(self.pid_dir),
            "RPC_PORT": options.rpc_port,
            "REST_PORT": options.rest_port,
            "REST_BIND_ADDRESS": options.rest_bind_address,
            "SLOTS": options.slots,
            "TASKMANAGER_MEMORY": options.taskmanager_memory,
            "JOBMANAGER_MEMORY": options.jobmanager_memory,
            "SAVEPOINT_DIR": as_uri(options.savepoint_dir),
            "CHECKPOINT_DIR": as_uri(options.checkpoints),
            "PYTHON": sys.executable,
            "CONNECTOR_JAR": connector.resolve().as_uri(),
        }
        settings = {**render_config(values), **options.flink}
        return write_conf_dir(
            self.conf_dir, settings, masters=f"localhost:{options.rest_port}\n", workers="localhost\n"
        )

    def _pids(self, daemon: str) -> tuple[int, ...]:
        path = self.pid_dir / f"flink-{IDENT}-{daemon}.pid"
        try:
            lines = path.read_text().split()
        except OSError:
            return ()
        return tuple(int(p) for p in lines if p.isdigit() and pid_alive(int(p)))

    def jobmanager_pids(self) -> tuple[int, ...]:
        """Live JobManager processes started from this state directory."""
        return self._pids("standalonesession")

    def taskmanager_pids(self) -> tuple[int, ...]:
        """Live TaskManager processes started from this state directory, oldest first."""
        return self._pids("taskexecutor")

    def status(self) -> ClusterStatus:
        """Running when a JobManager of this state directory lives and its REST API answers."""
        jms, tms, rest = self.jobmanager_pids(), self.taskmanager_pids(), self.rest
        overview: dict[str, Any] = {}
        if jms and rest:
            try:
                overview = FlinkRest(rest, timeout=3).overview()
            except ClusterError:
                overview = {}
        return ClusterStatus(bool(jms and overview), rest, self.state_dir, jms, tms, overview)

    def start(self, options: ClusterOptions | None = None, timeout: float = 120.0) -> ClusterStatus:
        """Start the JobManager and a TaskManager unless they run; wait until a TaskManager registered.

        Raises:
            ClusterError: java is missing, a port is taken, or the cluster did not come up in ``timeout``.
        """
        options = options or ClusterOptions()
        current = self.status()
        if current.running:
            return current
        if current.jobmanager_pids or current.taskmanager_pids:
            raise ClusterError(f"{current.line()}: run `modelserving cluster stop` first")
        if shutil.which("java") is None and environment().java_home is None:
            raise ClusterError("java not found on PATH: Flink needs Java 11 or newer (17 recommended)")
        for name, port in (("rest", options.rest_port), ("rpc", options.rpc_port)):
            if port_open("127.0.0.1", port):
                raise ClusterError(
                    f"port {port} is taken: another Flink cluster (or program) listens there; "
                    f"choose another with --{name}-port"
                )
        for directory in (self.log_dir, self.pid_dir, Path(options.savepoint_dir), options.checkpoints):
            directory.mkdir(parents=True, exist_ok=True)
        self.configure(options)
        rest = f"localhost:{options.rest_port}"
        self._info_file.write_text(json.dumps({"rest": rest, "options": jsonable(asdict(options))}, indent=2))
        self._script("start-cluster.sh")
        deadline = time.monotonic() + timeout
        api = FlinkRest(rest, timeout=3)
        while time.monotonic() < deadline:
            if not self.jobmanager_pids():
                raise ClusterError(f"the JobManager exited at start; see {self.log_dir}")
            try:
                if api.overview().get("taskmanagers", 0) >= 1:
                    status = self.status()
                    log.info("cluster started", extra={"rest": rest, "state": str(self.state_dir)})
                    return status
            except ClusterError:
                pass
            time.sleep(1)
        self.stop()
        raise ClusterError(f"the cluster did not come up within {timeout:.0f}s; see {self.log_dir}")

    def add_taskmanager(self) -> int:
        """Start one more TaskManager (``taskmanager.sh start``); returns its pid.

        Raises:
            ClusterError: the script failed or no new TaskManager process appeared.
        """
        before = set(self.taskmanager_pids())
        self._script("taskmanager.sh", "start")
        new = [p for p in self.taskmanager_pids() if p not in before]
        if not new:
            raise ClusterError(f"no TaskManager started; see {self.log_dir}")
        log.info("taskmanager started", extra={"pid": new[-1]})
        return new[-1]

    def stop(self, timeout: float = 30.0) -> ClusterStatus:
        """Stop every TaskManager, then the JobManager, of this state directory; a no-op when stopped.

        Like ``stop-cluster.sh`` (SIGTERM, SIGKILL after ``timeout``), but by
        the pids in this cluster's pid files, so a TaskManager added with
        :meth:`add_taskmanager` stops too and no other cluster is touched.
        """
        tms, jms = self.taskmanager_pids(), self.jobmanager_pids()
        for pid in (*tms, *jms):
            terminate(pid, timeout)
        for pid_file in self.pid_dir.glob(f"flink-{IDENT}-*.pid"):
            pid_file.unlink(missing_ok=True)
        if tms or jms:
            log.info("cluster stopped", extra={"pids": ",".join(map(str, (*tms, *jms))), "state": str(self.state_dir)})
        return self.status()

    def _script(self, name: str, *args: str) -> str:
        script = flink_home() / "bin" / name
        proc = subprocess.run(
            ["bash", str(script), *args],
            env=self.script_env(),
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=180,
            start_new_session=True,  # the daemons outlive this command; Ctrl-C here does not reach them
        )
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
            raise ClusterError(f"{name} failed (exit {proc.returncode}): {tail[0]}")
        return proc.stdout
