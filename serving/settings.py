"""Typed settings. Read from CLI flags, ``MODELSERVING_*`` environment variables or a file.

This module (and ``serving.kafka.settings`` for ``MODELSERVING_KAFKA_*``) is
where the environment is read: :func:`environment` for the process-wide
variables, nowhere else.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from serving.errors import ConfigError

#: No setting's validation error repeats the value it refused: it may be a secret.
HIDE_INPUT = ConfigDict(hide_input_in_errors=True)

#: 9999-12-31T23:59:59.999Z: no timestamp may lie beyond it, whatever the bounds, so
#: event-time arithmetic (slots, delays, hold bounds) never overflows a Java long.
MAX_TIMESTAMP_MS = 253_402_300_799_999


class Environment(BaseSettings):
    """The process-wide ``MODELSERVING_*`` variables (and ``JAVA_HOME``), read when asked for.

    Attributes:
        model_roots: ``MODELSERVING_MODEL_ROOTS``, ``:``-separated directories a
            by-reference model may be loaded from (default: the working directory).
        pmml_engine: ``MODELSERVING_PMML_ENGINE``: ``auto`` (NumPy where a model
            compiles, else pypmml), ``numpy`` or ``pypmml``.
        log_level: ``MODELSERVING_LOG_LEVEL`` (INFO).
        debug: ``MODELSERVING_DEBUG``: CLI errors show their traceback.
        jobmanager: ``MODELSERVING_JOBMANAGER``: ``host:port`` of the cluster the job commands use.
        flink_state_dir: ``MODELSERVING_FLINK_STATE_DIR``: the local cluster's state directory.
        kafka_config: ``MODELSERVING_KAFKA_CONFIG``: a TOML file with a ``[kafka]`` table.
        java_home: ``JAVA_HOME``, when ``java`` is not on the PATH.
        remote_model_hosts: ``MODELSERVING_REMOTE_MODEL_HOSTS``, ``,``-separated hosts a remote
            (``oip``) model's server may live on (default: this machine's loopback names only).
        remote_timeout_ms: ``MODELSERVING_REMOTE_TIMEOUT_MS``: how long a remote model's server may
            take to answer one request when its descriptor gives no ``timeout_ms``.
        remote_breaker_failures: ``MODELSERVING_REMOTE_BREAKER_FAILURES``: server failures in a row
            (timeouts, refused connections, 503s) that stop calls to a remote model (3).
        remote_breaker_open_ms: ``MODELSERVING_REMOTE_BREAKER_OPEN_MS``: how long calls stay stopped
            before one probe call tries the server again (5000).
    """

    model_config = SettingsConfigDict(env_prefix="MODELSERVING_", extra="ignore", hide_input_in_errors=True)

    model_roots: str | None = None
    pmml_engine: str = "auto"
    log_level: str = "INFO"
    debug: bool = False
    jobmanager: str | None = None
    flink_state_dir: Path | None = None
    kafka_config: Path | None = None
    java_home: Path | None = Field(None, validation_alias=AliasChoices("JAVA_HOME"))
    remote_model_hosts: str = "localhost,127.0.0.1,::1"
    remote_timeout_ms: int = Field(1_000, ge=1)
    remote_breaker_failures: int = Field(3, ge=1)
    remote_breaker_open_ms: int = Field(5_000, ge=0)

    def model_root_paths(self) -> list[Path]:
        """The model roots as paths: ``model_roots`` split on ``:``, or the working directory."""
        if self.model_roots:
            return [Path(p) for p in self.model_roots.split(os.pathsep) if p]
        return [Path.cwd()]

    def remote_host_list(self) -> tuple[str, ...]:
        """The allowed model-server hosts, lower-case, without brackets (``[::1]`` is ``::1``)."""
        return tuple(h.strip().strip("[]").lower() for h in self.remote_model_hosts.split(",") if h.strip())


def environment() -> Environment:
    """The environment as it is now.

    Raises:
        ConfigError: a variable holds a value its setting refuses (named, its value not shown).
    """
    try:
        return Environment()
    except ValidationError as exc:
        raise config_error(exc, "environment variable MODELSERVING_") from exc


#: Job kinds and the names Flink shows for them. ``passthrough`` serves no model: one
#: result per record, named ``PASSTHROUGH_MODEL``, the benchmark's ceiling.
JOB_NAMES = {
    "keyed": "ModelServingKeyedJob",
    "partitioned": "ModelServingFlatJob",
    "passthrough": "ModelServingPassthroughJob",
}
#: The job kinds that serve models (the cluster commands submit these).
SERVING_JOBS = ("keyed", "partitioned")
PASSTHROUGH_MODEL = "passthrough"


def config_error(exc: ValidationError, what: str = "setting") -> ConfigError:
    """One readable line for the first problem of a validation error: where and what, never the value."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "?"
    return ConfigError(f"invalid {what} {where}: {first['msg']}")


class ServingOptions(BaseModel, frozen=True):
    """What the serving functions need at run time; shipped to every Python worker.

    Attributes:
        early_records: ``hold`` keeps records that arrive before any model for
            their data type (up to ``max_held_records`` per key, for at most
            ``max_hold_ms``) and scores them with the first model; ``drop``
            sends them to dead letters as ``no model``.
        max_held_records: bound of the hold buffer per key; overflow is dead-lettered.
        max_hold_ms: how long (event time, or wall clock on an idle flush) a
            record waits for a first model of its data type before it is
            dead-lettered as ``no model``: no record is held for ever.
        max_model_delay_ms: records wait this long (event time) after the
            watermark passed them before they are scored, so a model published
            before them that reaches the job up to this much later still
            scores them. A model later than that is reported as ``LATE_MODEL``.
        late_model_horizon_ms: how far back (event time) each instance keeps
            counts of scored record times, so a ``LATE_MODEL`` event can say
            exactly how many records the model missed.
        max_future_skew_ms: a record ``ts`` (or model ``created_at``) more than
            this far ahead of the wall clock is dead-lettered as ``ts out of
            range`` before it touches a timer or a watermark. 0 switches the
            bound off (replays of data stamped ahead of this clock); a ``ts``
            below 0 or past year 9999 is always refused.
        max_record_bytes: larger data records are dead-lettered unparsed.
        max_model_message_bytes: larger model messages are rejected unparsed.
        dead_letter_max_payload_bytes: a dead letter keeps at most this many
            leading bytes of the original message (plus its size and SHA-256),
            so it always fits the dead-letter topic.
        startup_schemas: data types known from the start (Avro schemas as
            JSON text; ``--schemas DIR``, and what the data-types topic held
            when the job started), beside the bundled ones.
        schema_registry_url: a Confluent Schema Registry for Avro records whose
            schema id no known schema has.
        stats_every_records: emit stats after this many records per model (0: never).
        stats_every_seconds: emit stats when this long has passed since the last emission.
        batch_wait_ms: T, the micro-batch wait: records are scored in event-time
            slots of this width, so a record waits at most T ms after the
            watermark could release it; a wider slot means bigger batches
            and more latency.
        batch_size: B, the most records one ``score_batch`` call takes; a flush
            that releases more is scored in batches of B (bounds memory and
            the time one call holds the operator).
        idle_flush_ms: when the data stream goes quiet its watermark stops, and
            buffered records would wait; after this long they are scored with
            the models known by then. 0 turns it off: results then depend only
            on timestamps, never on arrival order (bounded inputs, tests).
        model_roots: directories by-reference models may be loaded from.
        remote_scoring: ``async`` scores a remote model's (format ``oip``) batches in
            PyFlink's async operator, so the serving function never waits for a
            model server; ``sync`` calls the server from the serving function.
        remote_async_timeout_ms: the async operator's own limit on one batch (the
            model's ``timeout_ms`` with its retry comes first); past it the
            batch's records are dead-lettered as ``remote timeout``.
        remote_async_capacity: batches in flight per async operator instance.
        remote_async_retries: how often the async operator asks again for a batch
            whose model server was unavailable (refused, dropped, 503, timed
            out, or its circuit open), every ``remote_async_backoff_ms``.
        trusted_keys: Ed25519 public keys (PEM texts) that may sign models
            (``--trusted-keys DIR``); a signed model must verify against one.
        require_signatures: refuse unsigned models too (see serving.governance.signing).
        selection: which model scores a record. ``event-time``: the latest
            model with ``created_at <= ts``, once the watermark has passed
            both (deterministic; waits for the watermark and
            ``max_model_delay_ms``). ``arrival``: the model serving when the
            record's batch reaches the function (the tutorial's rule; latency
            is the boundary batch wait plus the Python bundle time).
        late_records: a record already behind the watermark when it arrives:
            ``score`` it with the model serving then, or send it to the dead
            letters as ``late``. Never dropped silently.
        promotion_min_n: a challenger is recommended for promotion only after
            this many comparisons with the champion (serving.rollout.promotion).
        promotion_threshold: ... and once the Wilson lower bound (95 %) of its
            agreement rate is at least this, with no more errors than the champion.
        auto_promote: act on a recommendation: the job publishes a PROMOTE
            control message for it (else it only reports ``PROMOTE_RECOMMENDED``).
        comparison_tolerance: two regression scores agree when they differ by at most this.
        keep_versions: versions a data type's lineup remembers (for ROLLBACK without a re-publish).
    """

    model_config = HIDE_INPUT

    early_records: Literal["hold", "drop"] = "hold"
    max_held_records: int = Field(10_000, ge=0)
    max_hold_ms: int = Field(60_000, ge=0)
    max_model_delay_ms: int = Field(0, ge=0)
    late_model_horizon_ms: int = Field(10_000, ge=0)
    max_future_skew_ms: int = Field(3_600_000, ge=0)
    max_record_bytes: int = Field(64 * 1024, ge=1)
    max_model_message_bytes: int = Field(2 * 1024 * 1024, ge=1)
    dead_letter_max_payload_bytes: int = Field(256 * 1024, ge=0)
    startup_schemas: tuple[str, ...] = ()
    schema_registry_url: str | None = None
    stats_every_records: int = Field(1_000, ge=0)
    stats_every_seconds: float = Field(10.0, ge=0)
    batch_wait_ms: int = Field(10, ge=1)
    batch_size: int = Field(1_000, ge=1)
    idle_flush_ms: int = Field(0, ge=0)
    model_roots: tuple[Path, ...] = ()
    remote_scoring: Literal["async", "sync"] = "async"
    remote_async_timeout_ms: int = Field(30_000, ge=1)
    remote_async_capacity: int = Field(100, ge=1)
    remote_async_retries: int = Field(10, ge=0)
    remote_async_backoff_ms: int = Field(1_000, ge=1)
    trusted_keys: tuple[str, ...] = ()
    require_signatures: bool = False
    selection: Literal["event-time", "arrival"] = "event-time"
    late_records: Literal["score", "dead-letter"] = "score"
    promotion_min_n: int = Field(1_000, ge=1)
    promotion_threshold: float = Field(0.95, gt=0.0, lt=1.0)
    auto_promote: bool = False
    comparison_tolerance: float = Field(0.5, ge=0.0)
    keep_versions: int = Field(3, ge=1)

    @model_validator(mode="after")
    def _signatures_need_keys(self) -> ServingOptions:
        if self.require_signatures and not self.trusted_keys:
            raise ValueError("require_signatures needs trusted keys (--trusted-keys DIR): every model would be refused")
        return self


class JobSettings(BaseModel, frozen=True):
    """How a serving job runs on Flink.

    Attributes:
        job: ``keyed`` (KeyedCoProcessFunction), ``partitioned`` (broadcast models),
            or ``passthrough`` (no model: one result per record; the benchmark's ceiling).
        parallelism: operator parallelism.
        max_parallelism: fixed for the life of the job: savepoints depend on it.
        checkpoint_interval_ms: exactly-once checkpoints this often.
        checkpoint_timeout_ms: a checkpoint taking longer fails, and the job restarts.
        state_backend: ``hashmap`` (default) or ``rocksdb``.
        checkpoint_dir: where checkpoints go (a path or URI); None keeps them in memory.
        restore_from: a savepoint or checkpoint to start from.
        out_of_orderness_ms: how late a record may arrive in event time.
        model_idle_ms: after this long without models the model stream stops holding back watermarks.
        bundle_time_ms: the longest a record waits in a bundle before it crosses to
            or from the Python worker (PyFlink's default is 1,000 ms, which is all latency).
        bundle_size: records per bundle at most.
        boundary_batch_records: the most records of one key that cross to a Python
            worker as one element (``RecordBundler``); 1 sends every record alone.
        boundary_batch_ms: the longest a record waits in the JVM for its batch to fill.
        network_buffer_timeout_ms: how long a network buffer between two tasks may wait
            to fill before it is sent (Flink's ``execution.buffer-timeout.interval``,
            100 ms by default): at low rates every exchange adds up to this much latency.
        watermark_interval_ms: how often sources emit watermarks (Flink's default is
            200 ms); a record can be scored only after a watermark passes it.
        python_workers: where a local MiniCluster runs the Python functions:
            ``loopback`` (PyFlink's default: threads of the submitting process,
            all sharing one interpreter lock) or ``process`` (a worker process
            per Python operator, as on a real cluster). A real cluster always
            uses processes.
        restart_attempts: restarts (exponential back-off, 1 s to 10 s) before the job fails (0: fail at once).
        rest_bind_address: the interface a local MiniCluster's REST endpoint (web UI) listens on;
            loopback unless you mean to expose it.
        rest_port: its port (0: any free port).
    """

    model_config = HIDE_INPUT

    job: Literal["keyed", "partitioned", "passthrough"] = "keyed"
    parallelism: int = Field(1, ge=1)
    max_parallelism: int = Field(128, ge=1)
    checkpoint_interval_ms: int = Field(5_000, ge=100)
    checkpoint_timeout_ms: int = Field(60_000, ge=1_000)
    state_backend: Literal["hashmap", "rocksdb"] = "hashmap"
    checkpoint_dir: str | None = None
    restore_from: str | None = None
    out_of_orderness_ms: int = Field(200, ge=0)
    model_idle_ms: int = Field(1_000, ge=1)
    restart_attempts: int = Field(0, ge=0)
    bundle_time_ms: int = Field(100, ge=1)
    bundle_size: int = Field(1_000, ge=1)
    boundary_batch_records: int = Field(500, ge=1)
    boundary_batch_ms: int = Field(20, ge=1)
    network_buffer_timeout_ms: int = Field(100, ge=1)
    watermark_interval_ms: int = Field(200, ge=1)
    python_workers: Literal["loopback", "process"] = "loopback"
    rest_bind_address: str = "127.0.0.1"
    rest_port: int = Field(0, ge=0, le=65535)
    options: ServingOptions = ServingOptions()

    @field_validator("max_parallelism")
    @classmethod
    def _max_parallelism_is_fixed(cls, value: int) -> int:
        if value != 128:
            # Changing it invalidates every savepoint's key groups; see docs/state-compatibility.
            raise ValueError("max_parallelism is fixed at 128 so savepoints stay restorable")
        return value
