"""Operating a standalone Flink cluster: start and stop it, submit jobs, savepoints, upgrades.

* :class:`LocalCluster` runs a JobManager and a TaskManager on this machine
  from the scripts the apache-flink pip package ships (``pyflink/bin``), with
  a configuration this project owns (``serving/cluster_conf/config.yaml``,
  rendered into ``<state dir>/conf``). Its logs and pid files stay in the
  state directory, so it never mixes with another cluster.
* :func:`submit` runs ``flink run -py flink_jobs/main.py`` against any
  cluster, with the connector jar and this Python environment.
* :class:`FlinkRest` controls jobs through Flink's REST API: list, savepoint,
  stop with a savepoint, cancel.
* :func:`upgrade` is stop-with-savepoint, resubmit from it, confirm running.

This module never imports pyflink (it only locates its install directory),
so the CLI stays quick. Every failure a user can cause is a
:class:`ClusterError` with a one-line message.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from serving.errors import ConfigError, ServingError
from serving.logs import get_logger
from serving.ops.processes import pid_alive, port_open, terminate
from serving.paths import FLINK_STATE_DIR, JARS_DIR, PROJECT_ROOT, SAVEPOINTS_DIR
from serving.settings import JOB_NAMES as ALL_JOB_NAMES
from serving.settings import SERVING_JOBS, environment
from serving.uris import as_uri, local_path

log = get_logger("cluster")

CONF_TEMPLATE_DIR = Path(__file__).with_name("cluster_conf")
#: Conf, logs, pid files and submission records of the local cluster.
DEFAULT_STATE = FLINK_STATE_DIR
#: Savepoints (and, under ``checkpoints/``, checkpoints) of the local cluster. See savepoints/README.md.
DEFAULT_SAVEPOINTS = SAVEPOINTS_DIR
STATE_ENV = "MODELSERVING_FLINK_STATE_DIR"
JOBMANAGER_ENV = "MODELSERVING_JOBMANAGER"
DEFAULT_REST_PORT = 8081
DEFAULT_RPC_PORT = 6123
#: The ident in pid and log file names (``flink-modelserving-taskexecutor.pid``).
IDENT = "modelserving"

#: The serving jobs a cluster runs, and the names Flink shows for them.
JOB_NAMES = {kind: ALL_JOB_NAMES[kind] for kind in SERVING_JOBS}

#: Keys of the rendered config that the ``flink`` client needs; the rest only concern the cluster.
CLIENT_KEYS = (
    "env.java.opts.all",
    "env.log.dir",
    "rest.address",
    "rest.port",
    "python.executable",
    "python.client.executable",
    "python.execution-mode",
    "execution.checkpointing.externalized-checkpoint-retention",
)
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_SUBMITTED = re.compile(r"Job has been submitted with JobID ([0-9a-f]{32})")
_TERMINAL = {"FINISHED", "CANCELED", "FAILED", "SUSPENDED"}


class ClusterError(ServingError):
    """A Flink cluster or job could not be started, reached or controlled."""

    reason = "cluster error"


class ClusterUnreachable(ClusterError):
    """No Flink REST endpoint answered at the address."""

    reason = "cluster unreachable"


class JobNotFound(ClusterError):
    """The cluster does not know the job id."""

    reason = "job not found"


class SubmitError(ClusterError):
    """``flink run`` failed, or the submitted job did not come up."""

    reason = "submit failed"


class SavepointError(ClusterError):
    """A savepoint (or stop with savepoint) failed."""

    reason = "savepoint failed"


# --------------------------------------------------------------------------------------------------
# Locations


def flink_home() -> Path:
    """The Flink distribution inside the apache-flink pip package (``bin/``, ``lib/``, ``conf/``).

    Raises:
        ClusterError: pyflink is not installed, or its ``bin/flink`` is missing.
    """
    spec = importlib.util.find_spec("pyflink")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("apache-flink is not installed in this Python environment (pip install apache-flink)")
    home = Path(next(iter(spec.submodule_search_locations)))
    if not (home / "bin" / "flink").is_file():
        raise ClusterError(f"no Flink scripts under {home / 'bin'}: reinstall apache-flink")
    return home


def job_script() -> Path:
    """``flink_jobs/main.py``: the entry point ``flink run -py`` runs."""
    spec = importlib.util.find_spec("flink_jobs")
    if spec is None or not spec.submodule_search_locations:
        raise ClusterError("the flink_jobs package is not importable: install this project (make venv)")
    return Path(next(iter(spec.submodule_search_locations))) / "main.py"


def job_jars(jars_dir: Path = JARS_DIR) -> tuple[Path, list[Path]]:
    """``(connector jar, other jars)`` a Kafka job needs: everything ``make jars`` put in ``jars_dir``.

    The broker's own jars (``kafka/``) are not for jobs.

    Raises:
        ConfigError: the Kafka connector jar is missing.
    """
    connectors = sorted((jars_dir / "connector").glob("flink-sql-connector-kafka-*.jar"))
    if not connectors:
        raise ConfigError(f"the Flink Kafka connector is missing from {jars_dir / 'connector'}: run `make jars`")
    others = sorted(
        jar for jar in jars_dir.glob("*/*.jar") if jar.parent.name not in ("connector", "kafka") and jar.is_file()
    )
    return connectors[-1], others


def default_state_dir() -> Path:
    """``$MODELSERVING_FLINK_STATE_DIR``, else ``.cache/flink``."""
    return environment().flink_state_dir or DEFAULT_STATE


def parse_address(address: str) -> tuple[str, int]:
    """``HOST:PORT`` (or ``http://HOST:PORT``) of a JobManager's REST endpoint.

    Raises:
        ConfigError: not ``HOST:PORT``.
    """
    text = address.strip().removeprefix("http://").rstrip("/")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"not a JobManager address (HOST:PORT): {address!r}")
    return host, int(port)


def check_job_id(job_id: str) -> str:
    """A Flink job id: 32 hex digits.

    Raises:
        ConfigError: anything else.
    """
    if not _JOB_ID.match(job_id):
        raise ConfigError(f"not a Flink job id (32 hex digits): {job_id!r}")
    return job_id


# --------------------------------------------------------------------------------------------------
# The configuration


def render_config(
    values: Mapping[str, Any],
    template: Path = CONF_TEMPLATE_DIR / "config.yaml",
    keys: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The template's settings (only ``keys``, if given) with every ``${NAME}`` replaced by ``values[NAME]``.

    A value that is exactly ``${NAME}`` takes the type of ``values[NAME]`` (ports stay numbers).

    Raises:
        ConfigError: the template names a placeholder ``values`` lacks.
    """
    raw = yaml.safe_load(template.read_text())
    wanted = set(keys) if keys is not None else set(raw)
    rendered: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in wanted:
            continue
        if isinstance(value, str) and "${" in value:
            names = re.findall(r"\$\{(\w+)\}", value)
            missing = [n for n in names if n not in values]
            if missing:
                raise ConfigError(f"{template}: no value for ${{{missing[0]}}} (key {key})")
            whole = re.fullmatch(r"\$\{(\w+)\}", value)
            value = values[whole.group(1)] if whole else re.sub(r"\$\{(\w+)\}", lambda m: str(values[m[1]]), value)
        rendered[key] = value
    return rendered


def write_conf_dir(conf_dir: Path, settings: Mapping[str, Any], masters: str = "", workers: str = "") -> Path:
    """Write ``config.yaml`` (flat Flink keys), the log4j files and, if given, ``masters``/``workers``."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    text = "# Rendered by modelserving from serving/cluster_conf/config.yaml: edit that file, not this one.\n"
    text += yaml.safe_dump(dict(settings), sort_keys=False, width=100_000)
    (conf_dir / "config.yaml").write_text(text)
    for log4j in CONF_TEMPLATE_DIR.glob("log4j*.properties"):
        shutil.copyfile(log4j, conf_dir / log4j.name)
    if masters:
        (conf_dir / "masters").write_text(masters)
    if workers:
        (conf_dir / "workers").write_text(workers)
    return conf_dir


@dataclass(frozen=True)
class ClusterOptions:
    """What ``cluster start`` sets; every other setting comes from the template.

    Attributes:
        rest_port: the REST API and web UI.
        rest_bind_address: the interface they listen on (loopback by default).
        rpc_port: the JobManager's RPC port.
        slots: task slots of the TaskManager, the highest parallelism a job can run at.
        taskmanager_memory: ``taskmanager.memory.process.size``.
        jobmanager_memory: ``jobmanager.memory.process.size``.
        savepoint_dir: default savepoint target.
        checkpoint_dir: checkpoints (default ``savepoint_dir/checkpoints``).
        flink: any further Flink settings, over the template (e.g. ``{"heartbeat.timeout": "5s"}``).
    """

    rest_port: int = DEFAULT_REST_PORT
    rpc_port: int = DEFAULT_RPC_PORT
    rest_bind_address: str = "127.0.0.1"
    slots: int = 2
    taskmanager_memory: str = "2048m"
    jobmanager_memory: str = "1024m"
    savepoint_dir: Path = DEFAULT_SAVEPOINTS
    checkpoint_dir: Path | None = None
    flink: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Validate ports and slots."""
        for name in ("rest_port", "rpc_port"):
            port = getattr(self, name)
            if not 0 < port < 65536:
                raise ConfigError(f"{name.replace('_', '-')} out of range: {port}")
        if self.slots < 1:
            raise ConfigError(f"slots must be at least 1, got {self.slots}")

    @property
    def checkpoints(self) -> Path:
        """Where checkpoints go."""
        return Path(self.checkpoint_dir or Path(self.savepoint_dir) / "checkpoints")


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
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLINK_")}
        env.update(
            FLINK_CONF_DIR=str(self.conf_dir),
            FLINK_LOG_DIR=str(self.log_dir),
            FLINK_PID_DIR=str(self.pid_dir),
            FLINK_IDENT_STRING=IDENT,
        )
        return env

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
        self._info_file.write_text(json.dumps({"rest": rest, "options": _jsonable(asdict(options))}, indent=2))
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


# --------------------------------------------------------------------------------------------------
# REST


class FlinkRest:
    """Flink's REST API at ``host:port``: jobs, savepoints, stop, cancel.

    Every method raises :class:`ClusterUnreachable` when nothing answers,
    :class:`JobNotFound` for an unknown job, and :class:`ClusterError` with
    Flink's own first line for any other refusal.
    """

    def __init__(self, address: str, timeout: float = 10.0) -> None:
        host, port = parse_address(address)
        self.address = f"{host}:{port}"
        self.base = f"http://{self.address}"
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Mapping[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            message = _rest_error(exc)
            if exc.code == 404:
                raise JobNotFound(f"{message} at {self.base}") from None
            raise ClusterError(f"Flink refused {method} {path}: {message}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise ClusterUnreachable(
                f"no Flink cluster answered at {self.base} ({_reason(exc)}); "
                "start one with `modelserving cluster start` or pass --jobmanager HOST:PORT"
            ) from None
        return json.loads(raw) if raw.strip() else {}

    def overview(self) -> dict[str, Any]:
        """Cluster overview: taskmanagers, slots, job counts, Flink version."""
        return self._call("GET", "/overview")

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the cluster knows, newest first (``jid``, ``name``, ``state``, ``start-time``, ``tasks``)."""
        jobs = self._call("GET", "/jobs/overview").get("jobs", [])
        return sorted(jobs, key=lambda j: j.get("start-time", 0), reverse=True)

    def job(self, job_id: str) -> dict[str, Any]:
        """Details of one job (``state``, ``vertices`` with their parallelism)."""
        return self._call("GET", f"/jobs/{check_job_id(job_id)}")

    def checkpoints(self, job_id: str) -> dict[str, Any]:
        """Checkpoint statistics of a job (``counts``, ``latest``)."""
        return self._call("GET", f"/jobs/{check_job_id(job_id)}/checkpoints")

    def root_exception(self, job_id: str) -> str:
        """The first line of the job's latest failure, or an empty string."""
        info = self._call("GET", f"/jobs/{check_job_id(job_id)}/exceptions")
        history = info.get("exceptionHistory", {}).get("entries", [])
        text = history[0].get("stacktrace", "") if history else info.get("root-exception") or ""
        return _first_line(text)

    def restarts(self, job_id: str, timeout: float = 30.0) -> int:
        """How many times the job has restarted since it was submitted (Flink's ``numRestarts`` metric).

        The REST endpoint fetches metrics from the JobManager lazily (every
        few seconds), so a first request can come back empty: it is asked
        again until ``timeout``.
        """
        deadline = time.monotonic() + timeout
        while True:
            metrics = self._call("GET", f"/jobs/{check_job_id(job_id)}/metrics?get=numRestarts")
            values = [m.get("value") for m in metrics if m.get("id") == "numRestarts"] if metrics else []
            if values:
                return int(values[0])
            if time.monotonic() > deadline:
                raise ClusterError(f"job {job_id} reports no numRestarts metric")
            time.sleep(0.5)

    def parallelism(self, job_id: str) -> int:
        """The highest parallelism of the job's vertices."""
        return max((v.get("parallelism", 1) for v in self.job(job_id).get("vertices", [])), default=1)

    def trigger_savepoint(self, job_id: str, directory: str | None = None, timeout: float = 300.0) -> str:
        """Take a savepoint and keep the job running; returns its location.

        ``directory`` None uses the cluster's ``execution.checkpointing.savepoint-dir``.
        """
        self._require_running(job_id)
        body: dict[str, Any] = {"cancel-job": False, "formatType": "CANONICAL"}
        if directory:
            body["target-directory"] = directory
        trigger = self._call("POST", f"/jobs/{job_id}/savepoints", body)
        return self._await_savepoint(job_id, trigger["request-id"], timeout)

    def stop_with_savepoint(self, job_id: str, directory: str | None = None, timeout: float = 300.0) -> str:
        """Stop the job after a savepoint (no drain: timers and buffers stay in state); returns its location.

        Waits until the job is ``FINISHED``.
        """
        self._require_running(job_id)
        body: dict[str, Any] = {"drain": False, "formatType": "CANONICAL"}
        if directory:
            body["targetDirectory"] = directory
        trigger = self._call("POST", f"/jobs/{job_id}/stop", body)
        location = self._await_savepoint(job_id, trigger["request-id"], timeout)
        self.wait_for_state(job_id, {"FINISHED"}, timeout)
        return location

    def cancel(self, job_id: str, timeout: float = 60.0) -> None:
        """Cancel the job without a savepoint; waits until it is ``CANCELED``."""
        if self.job(job_id).get("state") in _TERMINAL:
            return
        self._call("PATCH", f"/jobs/{check_job_id(job_id)}?mode=cancel")
        self.wait_for_state(job_id, _TERMINAL, timeout)

    def wait_for_state(self, job_id: str, states: Iterable[str], timeout: float) -> str:
        """Poll until the job's state is one of ``states``; returns it.

        Raises:
            ClusterError: the job ended in another terminal state, or ``timeout`` passed.
        """
        wanted = set(states)
        deadline = time.monotonic() + timeout
        state = "?"
        while time.monotonic() < deadline:
            state = self.job(job_id).get("state", "?")
            if state in wanted:
                return state
            if state in _TERMINAL:
                cause = self.root_exception(job_id) if state == "FAILED" else ""
                raise ClusterError(f"job {job_id} is {state}" + (f": {cause}" if cause else ""))
            time.sleep(0.5)
        raise ClusterError(f"job {job_id} is {state}, not {'/'.join(sorted(wanted))}, after {timeout:.0f}s")

    def wait_running(self, job_id: str, timeout: float = 180.0) -> dict[str, Any]:
        """Poll until the job and every one of its tasks run; returns the job's details.

        Raises:
            SubmitError: the job failed, ended or did not get all its tasks running in ``timeout``.
        """
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.job(job_id)
            state = job.get("state")
            if state in _TERMINAL:
                cause = self.root_exception(job_id)
                raise SubmitError(f"job {job_id} is {state}" + (f": {cause}" if cause else ""))
            vertices = job.get("vertices", [])
            if state == "RUNNING" and vertices and all(v.get("status") == "RUNNING" for v in vertices):
                return job
            time.sleep(0.5)
        raise SubmitError(f"job {job_id} did not get all its tasks running within {timeout:.0f}s")

    def _require_running(self, job_id: str) -> None:
        state = self.job(job_id).get("state")
        if state != "RUNNING":
            raise SavepointError(f"job {job_id} is {state}: only a running job can take a savepoint")

    def _await_savepoint(self, job_id: str, request_id: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = self._call("GET", f"/jobs/{job_id}/savepoints/{request_id}")
            if info.get("status", {}).get("id") == "COMPLETED":
                operation = info.get("operation", {})
                if "location" in operation:
                    log.info("savepoint completed", extra={"job": job_id, "location": operation["location"]})
                    return operation["location"]
                cause = operation.get("failure-cause", {})
                raise SavepointError(
                    f"savepoint of job {job_id} failed: "
                    f"{_first_line(cause.get('stack-trace') or cause.get('class') or 'unknown cause')}"
                )
            time.sleep(0.5)
        raise SavepointError(f"savepoint of job {job_id} did not complete within {timeout:.0f}s")


# --------------------------------------------------------------------------------------------------
# Submitting


@dataclass(frozen=True)
class Submission:
    """What one ``flink run`` of a serving job is made of; recorded per job id for ``upgrade``.

    Attributes:
        job: ``keyed`` or ``partitioned``.
        parallelism: job parallelism (also decides the partitioned job's bucket count).
        kafka_env: the non-secret Kafka settings as ``MODELSERVING_KAFKA_*`` variables.
        kafka_config: a TOML file the job reads too (secrets, ``extra`` client properties).
        checkpoint_interval_ms: exactly-once checkpoints this often.
        from_savepoint: a savepoint or retained checkpoint to start from.
    """

    job: str
    parallelism: int = 1
    kafka_env: Mapping[str, str] = field(default_factory=dict)
    kafka_config: str | None = None
    checkpoint_interval_ms: int = 2000
    from_savepoint: str | None = None

    def __post_init__(self) -> None:
        """Validate the job kind and numbers."""
        if self.job not in JOB_NAMES:
            raise ConfigError(f"unknown job {self.job!r}: one of {', '.join(JOB_NAMES)}")
        if self.parallelism < 1:
            raise ConfigError(f"--parallelism must be at least 1, got {self.parallelism}")
        if self.checkpoint_interval_ms < 100:
            raise ConfigError(f"--checkpoint-interval must be at least 100 ms, got {self.checkpoint_interval_ms}")


def flink_run_command(
    submission: Submission, address: str, *, detached: bool, python: str = sys.executable
) -> list[str]:
    """The ``flink run`` command line for ``submission`` against the REST endpoint ``address``."""
    connector, others = job_jars()
    cmd = [str(flink_home() / "bin" / "flink"), "run", "-m", address, "-p", str(submission.parallelism)]
    cmd += ["-j", str(connector)]
    for jar in others:
        cmd += ["-C", jar.resolve().as_uri()]
    cmd += ["-pyclientexec", python, "-pyexec", python]
    if detached:
        cmd.append("-d")
    if submission.from_savepoint:
        cmd += ["-s", submission.from_savepoint]
    # "--": without it the flink CLI takes --parallelism (and --job, a prefix of --jobmanager) for its own.
    cmd += ["-py", str(job_script()), "--"]
    cmd += ["--job", submission.job, "--parallelism", str(submission.parallelism)]
    cmd += ["--checkpoint-interval", str(submission.checkpoint_interval_ms)]
    if submission.kafka_env.get("MODELSERVING_KAFKA_BOOTSTRAP_SERVERS"):
        cmd += ["--bootstrap-servers", submission.kafka_env["MODELSERVING_KAFKA_BOOTSTRAP_SERVERS"]]
    if submission.kafka_config:
        cmd += ["--kafka-config", submission.kafka_config]
    return cmd


def client_conf(address: str, state_dir: Path) -> dict[str, Any]:
    """The ``flink`` client's config for a cluster at ``address``: no cluster-side paths.

    A job must not carry this machine's checkpoint or savepoint paths to
    another cluster: it uses the cluster's own.
    """
    host, port = parse_address(address)
    values = {"LOG_DIR": str(state_dir / "log"), "REST_PORT": port, "PYTHON": sys.executable}
    return {**render_config(values, keys=CLIENT_KEYS), "rest.address": host}


def submit(
    submission: Submission,
    address: str,
    state_dir: Path | None = None,
    *,
    detached: bool = True,
    on_submitted: Callable[[str], None] | None = None,
    timeout: float = 300.0,
) -> str:
    """Submit a serving job with ``flink run -py``; returns its job id.

    Detached, it returns once the job is ``RUNNING``. Attached, it calls
    ``on_submitted(job_id)`` as soon as the id is known and returns when the
    job ends (stopping this command leaves the job running). Each submission
    is recorded under ``state_dir/submissions`` for :func:`upgrade`.

    Raises:
        ClusterUnreachable: nothing answers at ``address``.
        ConfigError: the savepoint does not exist (checked when it is a local path and the
            cluster is this machine's), or the connector jar is missing.
        SubmitError: ``flink run`` failed; the message is the cause, in one line.
    """
    state = Path(state_dir or default_state_dir()).resolve()
    rest = FlinkRest(address)
    rest.overview()  # fail fast, and clearly, when the cluster is down
    if submission.from_savepoint:
        _check_savepoint(submission.from_savepoint, rest.address, state)
    if shutil.which("java") is None and environment().java_home is None:
        raise ClusterError("java not found on PATH: the flink client needs Java 11 or newer")
    (state / "log").mkdir(parents=True, exist_ok=True)
    cmd = flink_run_command(submission, rest.address, detached=detached)
    output_log = state / "log" / f"submit-{submission.job}-{time.strftime('%Y%m%d-%H%M%S')}.log"
    log.info(
        "submitting",
        extra={
            "job": submission.job,
            "parallelism": submission.parallelism,
            "jobmanager": rest.address,
            "from_savepoint": submission.from_savepoint or "-",
            "output": str(output_log),
        },
    )

    def submitted(job_id: str) -> None:
        _record(state, job_id, submission, rest.address)
        if on_submitted:
            on_submitted(job_id)

    with tempfile.TemporaryDirectory(prefix="client-conf-", dir=state) as conf_dir:
        write_conf_dir(Path(conf_dir), client_conf(rest.address, state))
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLINK_")}
        env.update(submission.kafka_env)
        env.update(FLINK_CONF_DIR=conf_dir, FLINK_LOG_DIR=str(state / "log"), FLINK_IDENT_STRING=IDENT)
        job_id, code, output = _run_flink(cmd, env, output_log, submitted, timeout if detached else None)
    if code != 0 or job_id is None:
        raise SubmitError(f"{_failure_line(output)} (flink run exit {code}; output in {output_log})")
    if detached:
        rest.wait_for_state(job_id, {"RUNNING"}, 60)
    log.info("job submitted", extra={"job_id": job_id, "job": submission.job, "jobmanager": rest.address})
    return job_id


def _run_flink(
    cmd: list[str],
    env: Mapping[str, str],
    output_log: Path,
    on_submitted: Callable[[str], None],
    timeout: float | None,
) -> tuple[str | None, int, str]:
    """Run ``flink run``, copying its output to ``output_log``; report the job id as soon as it shows.

    Returns ``(job id or None, exit code, output)``.
    """
    lines: list[str] = []
    found: list[str] = []
    with open(output_log, "w") as out:
        out.write(f"$ {shlex.join(cmd)}\n")
        process = subprocess.Popen(
            cmd,
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,  # Ctrl-C reaches this command only; the flink client is stopped below
        )

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                out.write(line)
                out.flush()
                lines.append(line.rstrip("\n"))
                match = _SUBMITTED.search(line)
                if match and not found:
                    found.append(match.group(1))
                    on_submitted(match.group(1))

        reader = threading.Thread(target=read, name="flink-run-output", daemon=True)
        reader.start()
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired:
            raise SubmitError(f"flink run did not finish within {timeout:.0f}s; output in {output_log}") from None
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)
            reader.join(10)
    return (found[0] if found else None), code, "\n".join(lines)


def _check_savepoint(location: str, address: str, state_dir: Path) -> None:
    """Refuse a local savepoint path that does not exist, when the cluster is this state directory's.

    Another cluster may see paths this machine does not (a container volume): Flink itself judges those.
    """
    path = local_path(location)
    local = LocalCluster(state_dir).rest
    if path is None or local is None or not _same_endpoint(local, address):
        return
    if not path.exists():
        raise ConfigError(f"savepoint {path} does not exist")
    if path.is_dir() and not (path / "_metadata").is_file():
        raise ConfigError(f"{path} is not a savepoint or checkpoint: it has no _metadata file")


def _same_endpoint(a: str, b: str) -> bool:
    loopback = {"localhost", "127.0.0.1", "::1"}
    (host_a, port_a), (host_b, port_b) = parse_address(a), parse_address(b)
    return port_a == port_b and (host_a == host_b or {host_a, host_b} <= loopback)


def _record(state_dir: Path, job_id: str, submission: Submission, address: str) -> None:
    records = state_dir / "submissions"
    records.mkdir(parents=True, exist_ok=True)
    record = {**_jsonable(asdict(submission)), "jobmanager": address, "submitted_at": time.time()}
    (records / f"{job_id}.json").write_text(json.dumps(record, indent=2))


def recorded_submission(job_id: str, state_dir: Path | None = None) -> Submission | None:
    """What ``job_id`` was submitted with from this state directory, if it was."""
    path = Path(state_dir or default_state_dir()) / "submissions" / f"{check_job_id(job_id)}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = set(Submission.__dataclass_fields__)
    return Submission(**{k: v for k, v in record.items() if k in names})


@dataclass(frozen=True)
class Upgrade:
    """The outcome of :func:`upgrade`."""

    old_job: str
    savepoint: str
    new_job: str
    parallelism: int
    job: str


def upgrade(
    job_id: str,
    address: str,
    state_dir: Path | None = None,
    *,
    parallelism: int | None = None,
    savepoint_dir: str | None = None,
    kafka: tuple[Mapping[str, str], str | None] | None = None,
    timeout: float = 300.0,
) -> Upgrade:
    """Stop ``job_id`` with a savepoint, submit the current code from it, and wait until every task runs.

    The new job keeps the kind, Kafka settings and checkpoint interval it was
    submitted with (recorded by :func:`submit` in ``state_dir``), unless
    ``kafka`` (``MODELSERVING_KAFKA_*`` variables, config file) overrides them;
    without a record, ``kafka`` is required and the kind comes from the job's
    name. ``parallelism`` defaults to the old job's.

    Raises:
        ClusterError: the job is not running, the savepoint failed, or the new job did not
            come up (the message then names the savepoint, to restore by hand).
    """
    rest = FlinkRest(address)
    details = rest.job(job_id)
    if details.get("state") != "RUNNING":
        raise ClusterError(f"job {job_id} is {details.get('state')}: only a running job can be upgraded")
    recorded = recorded_submission(job_id, state_dir)
    kinds = {name: kind for kind, name in JOB_NAMES.items()}
    kind = recorded.job if recorded else kinds.get(details.get("name", ""))
    if kind is None:
        raise ClusterError(f"job {job_id} ({details.get('name')}) is not a serving job this command can upgrade")
    if kafka is not None:
        kafka_env, kafka_config = kafka
    elif recorded:
        kafka_env, kafka_config = recorded.kafka_env, recorded.kafka_config
    else:
        raise ConfigError(f"job {job_id} has no submission record here: pass its Kafka settings")
    new_parallelism = parallelism or rest.parallelism(job_id)
    interval = recorded.checkpoint_interval_ms if recorded else 2000
    submission = Submission(kind, new_parallelism, kafka_env, kafka_config, interval)  # validated before stopping
    savepoint = rest.stop_with_savepoint(job_id, savepoint_dir, timeout)
    log.info("job stopped with savepoint", extra={"job": job_id, "savepoint": savepoint})
    try:
        new_job = submit(replace(submission, from_savepoint=savepoint), address, state_dir, detached=True)
        rest.wait_running(new_job, timeout)
    except ClusterError as exc:
        raise ClusterError(
            f"job {job_id} was stopped with savepoint {savepoint}, but the new job did not come up: {exc}; "
            f"restore by hand with `modelserving submit {kind} --from-savepoint {savepoint}`"
        ) from exc
    log.info("job upgraded", extra={"old": job_id, "new": new_job, "parallelism": new_parallelism})
    return Upgrade(job_id, savepoint, new_job, new_parallelism, kind)


# --------------------------------------------------------------------------------------------------
# Helpers


def _failure_line(output: str) -> str:
    """The one line that says why ``flink run`` failed, from its output."""
    lines = output.splitlines()
    for line in lines:
        if "flink_jobs.main: error:" in line:
            return line.split("flink_jobs.main: error:", 1)[1].strip()
    causes = [
        line.strip().removeprefix("Caused by:").strip()
        for line in lines
        if line.strip().startswith("Caused by:") and "Python process exits with code" not in line
    ]
    if causes:
        return _strip_exception_classes(causes[-1])
    for line in reversed(lines):
        if line.strip() and not line.startswith(("\tat ", "    at ")):
            return _strip_exception_classes(line.strip())
    return "no output"


def _strip_exception_classes(text: str) -> str:
    """``java.lang.RuntimeException: java.io.FileNotFoundException: msg`` -> ``msg``."""
    previous = None
    while previous != text:
        previous = text
        text = re.sub(r"^(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\s*:\s*", "", text)
    return text


def _rest_error(exc: urllib.error.HTTPError) -> str:
    try:
        errors = json.loads(exc.read()).get("errors", [])
    except (ValueError, OSError):
        errors = []
    return _first_line(errors[0] if errors else f"HTTP {exc.code}") or f"HTTP {exc.code}"


def _first_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return _strip_exception_classes(first)


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", exc)
    return str(reason.strerror if isinstance(reason, OSError) and reason.strerror else reason)


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
