"""Entry point of a Kafka serving job: ``python -m flink_jobs.main`` or ``flink run -py flink_jobs/main.py``.

``main`` only reads flags and runs; the graph comes from
``flink_jobs.jobs.build_job``, the same function the tests call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pydantic import ValidationError

from flink_jobs.control import latest_checkpoint
from flink_jobs.environment import create_environment, kafka_jars
from flink_jobs.io.kafka import KafkaIO
from flink_jobs.jobs import build_job
from serving import logs
from serving.errors import ConfigError, ServingError
from serving.governance.signing import read_public_keys
from serving.kafka.clients import check_reachable
from serving.kafka.settings import KafkaSettings
from serving.ops.processes import interrupt_on_sigterm
from serving.records.schema import DataTypeSchema, SchemaError
from serving.settings import JOB_NAMES, JobSettings, ServingOptions, config_error


def parser() -> argparse.ArgumentParser:
    """Flags of the job entry point."""
    p = argparse.ArgumentParser(prog="flink_jobs.main", description="Run a model-serving job on Kafka topics.")
    p.add_argument("--job", choices=sorted(JOB_NAMES), default="keyed")
    p.add_argument("--parallelism", type=int, default=1)
    p.add_argument("--checkpoint-dir", default=None, help="path or URI; needed to restore after a crash")
    p.add_argument("--checkpoint-interval", type=int, default=2000, metavar="MS")
    p.add_argument("--restore", default=None, help="savepoint/checkpoint path, or 'latest' (in --checkpoint-dir)")
    p.add_argument("--state-backend", choices=["hashmap", "rocksdb"], default="hashmap")
    p.add_argument("--early-records", choices=["hold", "drop"], default="hold")
    p.add_argument("--idle-flush-ms", type=int, default=1000)
    p.add_argument("--max-held-records", type=int, default=10_000, help="per key, before any model (hold mode)")
    p.add_argument("--stats-every-records", type=int, default=1000)
    p.add_argument("--stats-every-seconds", type=float, default=10.0)
    p.add_argument("--restart-attempts", type=int, default=10)
    p.add_argument("--bundle-time-ms", type=int, default=100, help="Python bundle time (latency), default 100")
    p.add_argument("--bundle-size", type=int, default=1000, help="Python bundle size, default 1000")
    p.add_argument("--batch-size", type=int, default=1000, metavar="B", help="most records per score_batch call")
    p.add_argument(
        "--trusted-keys", type=Path, default=None, metavar="DIR",
        help="Ed25519 public keys (*.pub, from `modelserving keys generate`) that may sign models",
    )  # fmt: skip
    p.add_argument("--require-signatures", action="store_true", help="refuse unsigned models too")
    p.add_argument(
        "--remote-scoring", choices=["async", "sync"], default="async",
        help="remote (oip) models: in PyFlink's async operator (default) or inside the serving function",
    )  # fmt: skip
    p.add_argument("--batch-wait-ms", type=int, default=10, metavar="T", help="event-time slot a flush covers")
    p.add_argument(
        "--selection",
        choices=["event-time", "arrival"],
        default="event-time",
        help="which model scores a record: the one current at its ts (waits for the watermark), or at arrival",
    )
    p.add_argument(
        "--late-records",
        choices=["score", "dead-letter"],
        default="score",
        help="a record behind the watermark: scored by the model serving then, or dead-lettered as 'late'",
    )
    p.add_argument(
        "--promotion-min-n", type=int, default=1000, help="comparisons before a challenger may be recommended (1000)"
    )
    p.add_argument(
        "--promotion-threshold", type=float, default=0.95,
        help="least Wilson lower bound (95 %%) of the agreement rate to recommend a challenger (0.95)",
    )  # fmt: skip
    p.add_argument("--auto-promote", action="store_true", help="act on a recommendation: publish PROMOTE")
    p.add_argument("--comparison-tolerance", type=float, default=0.5, help="regression scores this close agree")
    p.add_argument("--keep-versions", type=int, default=3, help="versions per data type kept for ROLLBACK (3)")
    p.add_argument(
        "--boundary-batch-records", type=int, default=500, help="most records per element sent to Python (500)"
    )
    p.add_argument("--boundary-batch-ms", type=int, default=20, help="longest wait for that element to fill (20)")
    p.add_argument(
        "--buffer-timeout-ms", type=int, default=100, help="longest wait of a network buffer between tasks (100)"
    )
    p.add_argument("--out-of-orderness-ms", type=int, default=200, help="how late a record may be in event time")
    p.add_argument("--watermark-interval-ms", type=int, default=200, help="how often sources emit watermarks")
    p.add_argument(
        "--model-idle-ms", type=int, default=1000, help="quiet time before the model stream stops holding watermarks"
    )
    p.add_argument(
        "--python-workers",
        choices=["loopback", "process"],
        default="loopback",
        help="local MiniCluster only: threads of this process (PyFlink's default) or a process per Python operator",
    )
    p.add_argument(
        "--max-model-delay-ms",
        type=int,
        default=500,
        help="records wait this long past the watermark, so a model up to this late still scores them (500)",
    )
    p.add_argument("--max-hold-ms", type=int, default=60_000, help="longest wait for a first model (event time)")
    p.add_argument(
        "--late-model-horizon-ms", type=int, default=10_000, help="how far back late models are counted exactly"
    )
    p.add_argument(
        "--max-future-skew-ms",
        type=int,
        default=3_600_000,
        help="dead-letter a ts this far ahead of the wall clock (0: no bound, for replays)",
    )
    p.add_argument(
        "--dead-letter-max-payload-bytes", type=int, default=256 * 1024, help="bytes of the input a dead letter keeps"
    )
    p.add_argument("--rest-bind-address", default="127.0.0.1", help="local MiniCluster REST/web UI interface")
    p.add_argument("--rest-port", type=int, default=0, help="local MiniCluster REST/web UI port (0: any free one)")
    p.add_argument(
        "--schemas",
        type=Path,
        default=None,
        metavar="DIR",
        help="data types known from the start: every .avsc in DIR (beside those on the data-types topic)",
    )
    p.add_argument("--bootstrap-servers", default=None)
    p.add_argument("--kafka-config", type=Path, default=None, help="TOML file with a [kafka] table")
    p.add_argument("--local", action="store_true", help="add the jars in .cache (MiniCluster runs)")
    return p


def settings_from_args(args: argparse.Namespace) -> tuple[JobSettings, KafkaSettings]:
    """Job and Kafka settings from parsed flags (Kafka also from env and the config file)."""
    restore = args.restore
    if restore == "latest":
        if not args.checkpoint_dir:
            raise ConfigError("--restore latest needs --checkpoint-dir")
        restore = latest_checkpoint(args.checkpoint_dir)
        if restore is None:
            raise ConfigError(f"no completed checkpoint under {args.checkpoint_dir}")
    kafka = KafkaSettings.load(args.kafka_config, bootstrap_servers=args.bootstrap_servers)
    try:
        job = _job_settings(args, restore, kafka)
    except ValidationError as exc:
        raise config_error(exc, "job setting") from exc
    check_limits(job.options, kafka)
    return job, kafka


def schema_texts(directory: Path | None) -> tuple[str, ...]:
    """The Avro schemas (``.avsc``) of ``directory``, checked, as text.

    Raises:
        ConfigError: the directory is missing or a file is no servable schema.
    """
    if directory is None:
        return ()
    if not directory.is_dir():
        raise ConfigError(f"--schemas {directory} is not a directory")
    texts = []
    for path in sorted(directory.glob("*.avsc")):
        try:
            texts.append(DataTypeSchema.parse(path.read_text(encoding="utf-8")).avsc)
        except (OSError, SchemaError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    return tuple(texts)


def _job_settings(args: argparse.Namespace, restore: str | None, kafka: KafkaSettings) -> JobSettings:
    return JobSettings(
        job=args.job,
        parallelism=args.parallelism,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_interval_ms=args.checkpoint_interval,
        restore_from=restore,
        state_backend=args.state_backend,
        restart_attempts=args.restart_attempts,
        bundle_time_ms=args.bundle_time_ms,
        bundle_size=args.bundle_size,
        boundary_batch_records=args.boundary_batch_records,
        boundary_batch_ms=args.boundary_batch_ms,
        network_buffer_timeout_ms=args.buffer_timeout_ms,
        out_of_orderness_ms=args.out_of_orderness_ms,
        watermark_interval_ms=args.watermark_interval_ms,
        model_idle_ms=args.model_idle_ms,
        python_workers=args.python_workers,
        rest_bind_address=args.rest_bind_address,
        rest_port=args.rest_port,
        options=ServingOptions(
            batch_size=args.batch_size,
            remote_scoring=args.remote_scoring,
            trusted_keys=read_public_keys(args.trusted_keys) if args.trusted_keys else (),
            require_signatures=args.require_signatures,
            batch_wait_ms=args.batch_wait_ms,
            selection=args.selection,
            late_records=args.late_records,
            promotion_min_n=args.promotion_min_n,
            promotion_threshold=args.promotion_threshold,
            auto_promote=args.auto_promote,
            comparison_tolerance=args.comparison_tolerance,
            keep_versions=args.keep_versions,
            early_records=args.early_records,
            idle_flush_ms=args.idle_flush_ms,
            max_held_records=args.max_held_records,
            stats_every_records=args.stats_every_records,
            stats_every_seconds=args.stats_every_seconds,
            max_model_delay_ms=args.max_model_delay_ms,
            max_hold_ms=args.max_hold_ms,
            late_model_horizon_ms=args.late_model_horizon_ms,
            max_future_skew_ms=args.max_future_skew_ms,
            dead_letter_max_payload_bytes=args.dead_letter_max_payload_bytes,
            startup_schemas=schema_texts(args.schemas),
            schema_registry_url=kafka.schema_registry_url,
        ),
    )


def with_published_schemas(job: JobSettings, kafka: KafkaSettings) -> JobSettings:
    """``job`` knowing, from the start, the schemas the data-types topic holds now.

    They also arrive through the job's schema stream, but a model of their
    data type might overtake them there; known from the start, it need not
    wait. ``--schemas`` files win over the topic for the same data type.
    """
    from serving.kafka.providers.schemas import read_schemas

    given = {DataTypeSchema.parse(text).data_type for text in job.options.startup_schemas}
    published = tuple(s.avsc for s in read_schemas(kafka) if s.data_type not in given)
    options = job.options.model_copy(update={"startup_schemas": job.options.startup_schemas + published})
    return job.model_copy(update={"options": options})


#: Room a dead letter needs besides the bytes it keeps: reason, detail, ids, digest, framing.
DEAD_LETTER_OVERHEAD_BYTES = 8 * 1024


def check_limits(options: ServingOptions, kafka: KafkaSettings) -> None:
    """Refuse settings under which a dead letter or an admitted input could be larger than the topics take."""
    largest = options.dead_letter_max_payload_bytes + DEAD_LETTER_OVERHEAD_BYTES
    if largest > kafka.max_message_bytes:
        raise ConfigError(
            f"dead letters may reach {largest:,} bytes (dead_letter_max_payload_bytes + overhead), over the "
            f"topics' max_message_bytes {kafka.max_message_bytes:,}: lower one or raise the other"
        )


def main(argv: list[str] | None = None) -> int:
    """Build the job on Kafka and run it until it is stopped."""
    logs.configure()
    args = parser().parse_args(argv)
    interrupt_on_sigterm()  # stop like Ctrl-C: the MiniCluster's JVM ends with this process
    log = logs.get_logger("job")
    try:
        job, kafka = settings_from_args(args)
        check_reachable(kafka)
        job = with_published_schemas(job, kafka)
        env = create_environment(job, jars=kafka_jars() if args.local else (), local=args.local)
        build_job(env, job, KafkaIO(kafka, job.job))
        log.info(
            "job starting",
            extra={
                "job": JOB_NAMES[job.job],
                "parallelism": job.parallelism,
                "kafka": kafka.describe(),
                "restore": job.restore_from or "-",
            },
        )
        env.execute(JOB_NAMES[job.job])
    except ServingError as exc:
        print(f"flink_jobs.main: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
