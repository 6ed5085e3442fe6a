"""Entry point of a Kafka serving job: ``python -m flink_jobs.main`` or ``flink run -py flink_jobs/main.py``.

``main`` only reads flags and runs; the graph comes from
``flink_jobs.jobs.build_job``, the same function the tests call.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flink_jobs.control import latest_checkpoint
from flink_jobs.environment import create_environment, kafka_jars
from flink_jobs.io import KafkaIO
from flink_jobs.jobs import JOB_NAMES, build_job
from serving import logs
from serving.errors import ConfigError, ServingError
from serving.kafka.clients import check_reachable
from serving.kafka.settings import KafkaSettings
from serving.settings import JobSettings, ServingOptions


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
    p.add_argument("--batch-wait-ms", type=int, default=10, metavar="T", help="event-time slot a flush covers")
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
    job = JobSettings(
        job=args.job,
        parallelism=args.parallelism,
        checkpoint_dir=args.checkpoint_dir,
        checkpoint_interval_ms=args.checkpoint_interval,
        restore_from=restore,
        state_backend=args.state_backend,
        restart_attempts=args.restart_attempts,
        bundle_time_ms=args.bundle_time_ms,
        bundle_size=args.bundle_size,
        out_of_orderness_ms=args.out_of_orderness_ms,
        watermark_interval_ms=args.watermark_interval_ms,
        model_idle_ms=args.model_idle_ms,
        python_workers=args.python_workers,
        options=ServingOptions(
            batch_size=args.batch_size,
            batch_wait_ms=args.batch_wait_ms,
            early_records=args.early_records,
            idle_flush_ms=args.idle_flush_ms,
            max_held_records=args.max_held_records,
            stats_every_records=args.stats_every_records,
            stats_every_seconds=args.stats_every_seconds,
        ),
    )
    return job, KafkaSettings.load(args.kafka_config, bootstrap_servers=args.bootstrap_servers)


def main(argv: list[str] | None = None) -> int:
    """Build the job on Kafka and run it until it is stopped."""
    logs.configure()
    args = parser().parse_args(argv)
    log = logs.get_logger("job")
    try:
        job, kafka = settings_from_args(args)
        check_reachable(kafka)
        env = create_environment(job, jars=kafka_jars() if args.local else ())
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
