"""The execution environment: checkpointing, state backend, parallelism, Python, jars."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from pathlib import Path

from pyflink.common import Configuration
from pyflink.datastream import StreamExecutionEnvironment

from serving.errors import ConfigError
from serving.paths import CONNECTOR_DIR, SERVING_JAR
from serving.settings import JobSettings
from serving.uris import as_uri


def connector_jar() -> Path:
    """The Flink Kafka connector jar fetched by ``make jars``."""
    jars = sorted(CONNECTOR_DIR.glob("flink-sql-connector-kafka-*.jar"))
    if not jars:
        raise ConfigError(f"the Flink Kafka connector is missing from {CONNECTOR_DIR}: run `make jars`")
    return jars[-1]


#: PyFlink's switch between loopback and process Python workers on a MiniCluster.
PYTHON_WORKERS_ENV = "_python_worker_execution_mode"


def serving_jar() -> Path:
    """The project's Java helpers (``scripts/java``, built by ``make jars``): the keyed Kafka record writer."""
    if not SERVING_JAR.is_file():
        raise ConfigError(f"{SERVING_JAR} is missing: run `make jars`")
    return SERVING_JAR


def kafka_jars() -> list[Path]:
    """Every jar a Kafka job needs on a MiniCluster: the connector and the project's helpers."""
    return [connector_jar(), serving_jar()]


def job_configuration(
    settings: JobSettings, jars: Iterable[Path] = (), extra: Mapping[str, str] | None = None, local: bool = True
) -> Configuration:
    """The Flink configuration a serving job runs with.

    * ``python.execution-mode: process``: TensorFlow hangs in thread mode, and a
      savepoint taken in one mode restores empty state in the other.
    * exactly-once checkpoints every ``checkpoint_interval_ms``.
    * fixed max parallelism, so savepoints restore at any parallelism.
    * ``local`` (a MiniCluster, not ``flink run``): the REST endpoint on
      ``rest_bind_address:rest_port``.
    """
    conf = Configuration()
    conf.set_string("python.executable", sys.executable)
    conf.set_string("python.client.executable", sys.executable)
    conf.set_string("python.execution-mode", "process")
    conf.set_string("python.fn-execution.bundle.time", str(settings.bundle_time_ms))
    conf.set_string("python.fn-execution.bundle.size", str(settings.bundle_size))
    conf.set_string("execution.buffer-timeout.interval", f"{settings.network_buffer_timeout_ms}ms")
    conf.set_string("pipeline.auto-watermark-interval", f"{settings.watermark_interval_ms}ms")
    conf.set_string("execution.checkpointing.interval", f"{settings.checkpoint_interval_ms}ms")
    conf.set_string("execution.checkpointing.mode", "EXACTLY_ONCE")
    # A checkpoint stuck on an unreachable broker must fail (and restart the job), not hang 10 minutes.
    conf.set_string("execution.checkpointing.timeout", f"{settings.checkpoint_timeout_ms}ms")
    conf.set_string("state.backend.type", settings.state_backend)
    conf.set_string("pipeline.max-parallelism", str(settings.max_parallelism))
    if local:
        # A MiniCluster's REST endpoint (web UI, job control) listens on loopback unless told otherwise.
        # Never under `flink run`: there these keys would redirect the client away from the cluster.
        conf.set_string("rest.bind-address", settings.rest_bind_address)
        conf.set_string("rest.port", str(settings.rest_port))
    conf.set_string("parallelism.default", str(settings.parallelism))
    if settings.checkpoint_dir:
        conf.set_string("execution.checkpointing.dir", as_uri(settings.checkpoint_dir))
        conf.set_string("execution.checkpointing.externalized-checkpoint-retention", "RETAIN_ON_CANCELLATION")
    if settings.restore_from:
        conf.set_string("execution.state-recovery.path", as_uri(settings.restore_from))
    if settings.restart_attempts:
        # Back off 1 s, 2 s, 4 s ... up to 10 s: rides out a broker restart without hammering it.
        conf.set_string("restart-strategy.type", "exponential-delay")
        conf.set_string("restart-strategy.exponential-delay.initial-backoff", "1s")
        conf.set_string("restart-strategy.exponential-delay.max-backoff", "10s")
        conf.set_string(
            "restart-strategy.exponential-delay.attempts-before-reset-backoff", str(settings.restart_attempts)
        )
    else:
        # With checkpointing on, Flink's default retries forever; a failing job must fail.
        conf.set_string("restart-strategy.type", "none")
    jar_uris = [Path(j).resolve().as_uri() for j in jars]
    if jar_uris:
        conf.set_string("pipeline.jars", ";".join(jar_uris))
    for key, value in (extra or {}).items():
        conf.set_string(key, value)
    return conf


def select_python_workers(mode: str, environ: MutableMapping[str, str] = os.environ) -> None:
    """Tell PyFlink (which reads it when a job starts) where Python functions run on a MiniCluster.

    ``process``: a worker process per Python operator. ``loopback``: PyFlink's
    own default, left unset: threads of this process on a MiniCluster and
    processes on a cluster, where an explicit ``loopback`` fails the job.
    """
    if mode == "process":
        environ[PYTHON_WORKERS_ENV] = "process"
    else:
        environ.pop(PYTHON_WORKERS_ENV, None)


def create_environment(
    settings: JobSettings,
    jars: Iterable[Path] | None = None,
    extra: Mapping[str, str] | None = None,
    local: bool = True,
) -> StreamExecutionEnvironment:
    """A streaming environment: a local MiniCluster, or (``local=False``) the cluster ``flink run`` submits to.

    ``jars`` default to the project's Java helpers, which every job uses; pass
    ``()`` under ``flink run``, where the jars come from the command line.
    """
    jars = [serving_jar()] if jars is None else jars
    select_python_workers(settings.python_workers)
    env = StreamExecutionEnvironment.get_execution_environment(job_configuration(settings, jars, extra, local))
    env.set_parallelism(settings.parallelism)
    env.set_max_parallelism(settings.max_parallelism)
    return env
