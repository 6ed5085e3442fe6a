"""``modelserving cluster|submit|jobs|savepoint|stop|upgrade``: a real Flink cluster and its jobs.

``cluster start|stop|status`` runs a local standalone cluster from the
scripts in the apache-flink package; the job commands work against any
cluster (``--jobmanager HOST:PORT``, default: the local one).
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from pathlib import Path

from serving.cli.kafka import add_kafka_args, kafka_settings_from_args
from serving.errors import ConfigError
from serving.ops.cluster.config import (
    DEFAULT_REST_PORT,
    DEFAULT_RPC_PORT,
    DEFAULT_SAVEPOINTS,
    JOB_NAMES,
    JOBMANAGER_ENV,
    STATE_ENV,
    ClusterOptions,
    check_job_id,
)
from serving.ops.cluster.local import LocalCluster
from serving.ops.cluster.rest import FlinkRest
from serving.ops.cluster.submit import Submission, recorded_submission, submit
from serving.ops.cluster.upgrade import upgrade
from serving.settings import environment
from serving.uris import as_uri

#: ``cluster status`` exits with this when the cluster is stopped (0 when it runs), like ``kafka status``.
EXIT_STOPPED = 3
_KAFKA_FLAGS = ("bootstrap_servers", "kafka_config", "security_protocol", "sasl_mechanism", "sasl_username", "group_id")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``cluster start|stop|status``, ``submit``, ``jobs``, ``savepoint``, ``stop`` and ``upgrade``."""
    cluster = subparsers.add_parser(
        "cluster",
        help="run a local standalone Flink cluster (JobManager + TaskManager)",
        description="Start, stop or inspect a standalone Flink cluster on this machine, run by the scripts of "
        "the apache-flink package with the project's config (serving/ops/cluster_conf/config.yaml). Its conf, logs "
        f"and pid files live in --state-dir (${STATE_ENV}, default .cache/flink).",
    )
    actions = cluster.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    start = actions.add_parser("start", help="start the cluster (a no-op when it runs)")
    start.add_argument("--rest-port", type=int, default=DEFAULT_REST_PORT, help="REST API and web UI (8081)")
    start.add_argument("--rpc-port", type=int, default=DEFAULT_RPC_PORT, help="JobManager RPC (6123)")
    start.add_argument(
        "--rest-bind-address", default="127.0.0.1", metavar="ADDR", help="interface of the REST API (127.0.0.1)"
    )
    start.add_argument("--slots", type=int, default=2, help="task slots: the highest parallelism (2)")
    start.add_argument("--taskmanager-memory", default="2048m", metavar="SIZE", help="TaskManager process (2048m)")
    start.add_argument("--jobmanager-memory", default="1024m", metavar="SIZE", help="JobManager process (1024m)")
    start.add_argument(
        "--savepoint-dir", type=Path, default=DEFAULT_SAVEPOINTS, metavar="DIR", help="default savepoints/"
    )
    start.add_argument(
        "--checkpoint-dir", type=Path, default=None, metavar="DIR", help="default: SAVEPOINT_DIR/checkpoints"
    )
    start.add_argument(
        "-D", dest="flink", action="append", default=[], metavar="KEY=VALUE", help="any other Flink setting"
    )
    _add_state_dir(start)
    start.set_defaults(handler=run_cluster_start)
    stop = actions.add_parser("stop", help="stop the cluster's TaskManagers and JobManager (a no-op when stopped)")
    _add_state_dir(stop)
    stop.set_defaults(handler=run_cluster_stop)
    status = actions.add_parser("status", help=f"print whether the cluster runs; exit 0 if so, {EXIT_STOPPED} if not")
    _add_state_dir(status)
    status.set_defaults(handler=run_cluster_status)

    sub = subparsers.add_parser(
        "submit",
        help="submit a serving job to a Flink cluster (flink run -py)",
        description="Submit the keyed or partitioned job with `flink run -py flink_jobs/main.py`, the Kafka "
        "connector jar and this Python environment, and print its job id. Kafka settings resolve as for every "
        "Kafka command and travel to the job as MODELSERVING_KAFKA_* variables (never the SASL password: "
        "the job reads that from the same environment or --kafka-config file).",
    )
    sub.add_argument("job", choices=sorted(JOB_NAMES))
    sub.add_argument("--parallelism", type=int, default=1, metavar="N")
    sub.add_argument("--from-savepoint", default=None, metavar="PATH", help="savepoint or retained checkpoint")
    sub.add_argument("--detached", action="store_true", help="return once the job runs (default: wait until it ends)")
    sub.add_argument("--checkpoint-interval", type=int, default=2000, metavar="MS", help="default 2000")
    sub.add_argument(
        "--job-args", default="", metavar='"FLAGS"',
        help='more flags for the job, quoted as one: "--selection arrival --auto-promote" (see `python -m '
        'flink_jobs.main --help`)',
    )  # fmt: skip
    _add_jobmanager(sub)
    _add_state_dir(sub)
    add_kafka_args(sub)
    sub.set_defaults(handler=run_submit)

    jobs = subparsers.add_parser("jobs", help="list a cluster's jobs and their state (REST)")
    _add_jobmanager(jobs)
    _add_state_dir(jobs)
    jobs.set_defaults(handler=run_jobs)

    savepoint = subparsers.add_parser("savepoint", help="take a savepoint of a running job; print its path")
    savepoint.add_argument("job_id", metavar="JOB_ID")
    _add_savepoint_dir(savepoint)
    _add_jobmanager(savepoint)
    _add_state_dir(savepoint)
    savepoint.set_defaults(handler=run_savepoint)

    stop_job = subparsers.add_parser(
        "stop", help="stop a job: with --savepoint after a savepoint (print its path), else cancel it"
    )
    stop_job.add_argument("job_id", metavar="JOB_ID")
    stop_job.add_argument("--savepoint", action="store_true", help="stop with a savepoint (else: cancel)")
    _add_savepoint_dir(stop_job)
    _add_jobmanager(stop_job)
    _add_state_dir(stop_job)
    stop_job.set_defaults(handler=run_stop)

    up = subparsers.add_parser(
        "upgrade",
        help="stop a job with a savepoint, submit the current code from it, confirm it runs",
        description="The upgrade path: stop JOB_ID with a savepoint, submit the current code from it (same "
        "job kind, Kafka settings and checkpoint interval as recorded at submit, unless Kafka flags are "
        "given), and wait until every task of the new job runs. Prints the new job id.",
    )
    up.add_argument("job_id", metavar="JOB_ID")
    up.add_argument("--parallelism", type=int, default=None, metavar="N", help="default: the job's current one")
    _add_savepoint_dir(up)
    _add_jobmanager(up)
    _add_state_dir(up)
    add_kafka_args(up)
    up.set_defaults(handler=run_upgrade)


def run_cluster_start(args: argparse.Namespace) -> int:
    """Start the local cluster and print its status line."""
    options = ClusterOptions(
        rest_port=args.rest_port,
        rest_bind_address=args.rest_bind_address,
        rpc_port=args.rpc_port,
        slots=args.slots,
        taskmanager_memory=args.taskmanager_memory,
        jobmanager_memory=args.jobmanager_memory,
        savepoint_dir=args.savepoint_dir,
        checkpoint_dir=args.checkpoint_dir,
        flink=dict(_key_value(item) for item in args.flink),
    )
    print(LocalCluster(args.cluster_state).start(options).line())
    return 0


def run_cluster_stop(args: argparse.Namespace) -> int:
    """Stop the local cluster and print its status line."""
    print(LocalCluster(args.cluster_state).stop().line())
    return 0


def run_cluster_status(args: argparse.Namespace) -> int:
    """Print the status line; exit 0 when running, ``EXIT_STOPPED`` when not."""
    status = LocalCluster(args.cluster_state).status()
    print(status.line())
    return 0 if status.running else EXIT_STOPPED


def run_submit(args: argparse.Namespace) -> int:
    """Submit the job; print its id (as soon as it is known, when attached)."""
    settings = kafka_settings_from_args(args)
    submission = Submission(
        job=args.job,
        parallelism=args.parallelism,
        kafka_env=settings.to_environment(),
        kafka_config=str(args.kafka_config.resolve()) if args.kafka_config else None,
        checkpoint_interval_ms=args.checkpoint_interval,
        from_savepoint=_location(args.from_savepoint) if args.from_savepoint else None,
        job_args=tuple(shlex.split(args.job_args)),
    )
    address = jobmanager(args)

    def announce(job_id: str) -> None:
        print(job_id, flush=True)
        if not args.detached:
            print(
                f"{JOB_NAMES[args.job]} submitted to {address}; waiting until it ends (Ctrl-C leaves it running)",
                file=sys.stderr,
                flush=True,
            )

    job_id = submit(
        submission,
        address,
        args.cluster_state,
        detached=args.detached,
        on_submitted=None if args.detached else announce,
    )
    if args.detached:
        print(job_id)
    return 0


def run_jobs(args: argparse.Namespace) -> int:
    """Print one line per job: id, name, state, start time, duration, running tasks."""
    jobs = FlinkRest(jobmanager(args)).jobs()
    if not jobs:
        print("no jobs")
        return 0
    print(f"{'JOB ID':32}  {'NAME':22}  {'STATE':10}  {'STARTED':19}  {'DURATION':>9}  TASKS")
    for job in jobs:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(job.get("start-time", 0) / 1000))
        tasks = job.get("tasks", {})
        print(
            f"{job['jid']:32}  {job.get('name', '?')[:22]:22}  {job.get('state', '?'):10}  {started:19}  "
            f"{_duration(job.get('duration', 0)):>9}  {tasks.get('running', 0)}/{tasks.get('total', 0)} running"
        )
    return 0


def run_savepoint(args: argparse.Namespace) -> int:
    """Trigger a savepoint and print its location."""
    rest = FlinkRest(jobmanager(args))
    print(rest.trigger_savepoint(check_job_id(args.job_id), _location(args.dir) if args.dir else None))
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Stop with a savepoint (print its location) or cancel."""
    rest = FlinkRest(jobmanager(args))
    job_id = check_job_id(args.job_id)
    if args.savepoint:
        print(rest.stop_with_savepoint(job_id, _location(args.dir) if args.dir else None))
    else:
        if args.dir:
            raise ConfigError("--dir needs --savepoint: cancelling takes no savepoint")
        rest.cancel(job_id)
        print(f"job {job_id} canceled")
    return 0


def run_upgrade(args: argparse.Namespace) -> int:
    """Upgrade the job; print the new job id (and, on stderr, what happened)."""
    job_id = check_job_id(args.job_id)
    kafka = None
    # Kafka flags win; else what the job was submitted with; else the environment, as for submit.
    if any(getattr(args, flag, None) for flag in _KAFKA_FLAGS) or not recorded_submission(job_id, args.cluster_state):
        settings = kafka_settings_from_args(args)
        kafka = (settings.to_environment(), str(args.kafka_config.resolve()) if args.kafka_config else None)
    if args.parallelism is not None and args.parallelism < 1:
        raise ConfigError(f"--parallelism must be at least 1, got {args.parallelism}")
    result = upgrade(
        job_id,
        jobmanager(args),
        args.cluster_state,
        parallelism=args.parallelism,
        savepoint_dir=_location(args.dir) if args.dir else None,
        kafka=kafka,
    )
    print(
        f"{JOB_NAMES[result.job]}: {result.old_job} stopped with savepoint {result.savepoint}; "
        f"{result.new_job} running at parallelism {result.parallelism}",
        file=sys.stderr,
    )
    print(result.new_job)
    return 0


def jobmanager(args: argparse.Namespace) -> str:
    """``--jobmanager``, else ``$MODELSERVING_JOBMANAGER``, else the local cluster's REST address."""
    if args.jobmanager:
        return args.jobmanager
    configured = environment().jobmanager
    if configured:
        return configured
    return LocalCluster(args.cluster_state).rest or f"localhost:{DEFAULT_REST_PORT}"


def _location(path_or_uri: str) -> str:
    """A savepoint location for the cluster: local paths made absolute (``file://``), URIs unchanged."""
    return as_uri(path_or_uri)


def _add_jobmanager(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--jobmanager",
        default=None,
        metavar="HOST:PORT",
        help=f"the cluster's REST address (${JOBMANAGER_ENV}; default: the local cluster)",
    )


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    # dest is not ``state_dir``: that one names the Kafka broker's (see kafka_settings_from_args).
    parser.add_argument(
        "--state-dir",
        dest="cluster_state",
        type=Path,
        default=None,
        metavar="DIR",
        help=f"local cluster conf, logs, pids and submission records (${STATE_ENV}, default .cache/flink)",
    )


def _add_savepoint_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        default=None,
        metavar="DIR",
        help="savepoint target (default: the cluster's own, savepoints/ for the local cluster)",
    )


def _key_value(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"-D takes KEY=VALUE, got {item!r}")
    return key.strip(), value.strip()


def _duration(ms: int) -> str:
    seconds = int(ms / 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"
