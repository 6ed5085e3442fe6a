"""Where Flink, the job and its jars are, and the Flink configuration this project renders.

The settings come from a template this project owns
(``serving/ops/cluster_conf/config.yaml``, package data) with ``${NAME}``
placeholders; :func:`render_config` fills them in and :func:`write_conf_dir`
writes a ``FLINK_CONF_DIR``. Only the pyflink install directory is located,
never imported.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from serving.errors import ConfigError
from serving.ops.cluster.errors import ClusterError
from serving.ops.processes import child_environment
from serving.paths import FLINK_STATE_DIR, JARS_DIR, SAVEPOINTS_DIR
from serving.settings import JOB_NAMES as ALL_JOB_NAMES
from serving.settings import SERVING_JOBS, environment

#: ``serving/ops/cluster_conf``: package data beside this package, not in it.
CONF_TEMPLATE_DIR = Path(__file__).parent.with_name("cluster_conf")
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


def flink_script_environment(conf_dir: Path, log_dir: Path, **more: str) -> dict[str, str]:
    """The environment of a pyflink/bin script (daemons, ``flink run``): this conf and log directory, our ident.

    Built from this process's environment less every ``FLINK_*`` variable and
    PyFlink's runtime variables: a caller that ran a local PyFlink job holds a
    loopback Python worker, and a TaskManager or client that inherited its
    address would send its jobs' Python work there. ``more``: further variables.
    """
    env = {k: v for k, v in child_environment().items() if not k.startswith("FLINK_")}
    env.update(FLINK_CONF_DIR=str(conf_dir), FLINK_LOG_DIR=str(log_dir), FLINK_IDENT_STRING=IDENT, **more)
    return env


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
    text = "# Rendered by modelserving from serving/ops/cluster_conf/config.yaml: edit that file, not this one.\n"
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


def client_conf(address: str, state_dir: Path) -> dict[str, Any]:
    """The ``flink`` client's config for a cluster at ``address``: no cluster-side paths.

    A job must not carry this machine's checkpoint or savepoint paths to
    another cluster: it uses the cluster's own.
    """
    host, port = parse_address(address)
    values = {"LOG_DIR": str(state_dir / "log"), "REST_PORT": port, "PYTHON": sys.executable}
    return {**render_config(values, keys=CLIENT_KEYS), "rest.address": host}


def jsonable(value: Any) -> Any:
    """``value`` with mappings as dicts, tuples as lists and paths as strings, for ``json.dumps``."""
    if isinstance(value, Mapping):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
