"""Submitting a serving job with ``flink run -py flink_jobs/main.py``, and the record of each submission.

The record (``<state dir>/submissions/<job id>.json``) is what :mod:`.upgrade`
resubmits with.
"""

from __future__ import annotations

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
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from serving.errors import ConfigError
from serving.logs import get_logger
from serving.ops.cluster.config import (
    JOB_NAMES,
    check_job_id,
    client_conf,
    default_state_dir,
    flink_home,
    flink_script_environment,
    job_jars,
    job_script,
    jsonable,
    parse_address,
    write_conf_dir,
)
from serving.ops.cluster.errors import ClusterError, SubmitError
from serving.ops.cluster.local import LocalCluster
from serving.ops.cluster.rest import FlinkRest, strip_exception_classes
from serving.paths import PROJECT_ROOT
from serving.settings import environment
from serving.uris import local_path

log = get_logger("cluster")

_SUBMITTED = re.compile(r"Job has been submitted with JobID ([0-9a-f]{32})")


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
        job_args: more flags for the job itself (``flink_jobs/main.py``: ``--selection arrival``,
            ``--auto-promote`` ...), kept for ``upgrade``.
    """

    job: str
    parallelism: int = 1
    kafka_env: Mapping[str, str] = field(default_factory=dict)
    kafka_config: str | None = None
    checkpoint_interval_ms: int = 2000
    from_savepoint: str | None = None
    job_args: tuple[str, ...] = ()

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
    return cmd + list(submission.job_args)


def client_environment(kafka_env: Mapping[str, str], conf_dir: Path, log_dir: Path) -> dict[str, str]:
    """The environment of ``flink run``: this process's, less its Flink and PyFlink runtime variables.

    A caller that ran a local PyFlink job holds a loopback Python worker; a
    client that inherited its address would send the job's Python work there.
    """
    return {**flink_script_environment(conf_dir, log_dir), **kafka_env}


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
    is recorded under ``state_dir/submissions`` for :func:`~serving.ops.cluster.upgrade.upgrade`.

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
    refuse_shared_prefix(submission, rest, state)
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
        env = client_environment(submission.kafka_env, Path(conf_dir), state / "log")
        job_id, code, output = _run_flink(cmd, env, output_log, submitted, timeout if detached else None)
    if code != 0 or job_id is None:
        raise SubmitError(f"{_failure_line(output)} (flink run exit {code}; output in {output_log})")
    if detached:
        rest.wait_for_state(job_id, {"RUNNING"}, 60)
    log.info("job submitted", extra={"job_id": job_id, "job": submission.job, "jobmanager": rest.address})
    return job_id


#: The Kafka setting two jobs must never share: the sink's transactional ids derive from it.
PREFIX_VARIABLE = "MODELSERVING_KAFKA_TRANSACTIONAL_ID_PREFIX"


def refuse_shared_prefix(submission: Submission, rest: FlinkRest, state_dir: Path) -> None:
    """Refuse a job whose transactional-id prefix a live job of this cluster already uses.

    Two jobs with one prefix fence each other's producers and abort each
    other's transactions (committed results lost, or a job failing in a
    loop). Jobs submitted from this state directory are known by their
    recorded submission; others cannot be checked here.

    Raises:
        ConfigError: a live job uses the same prefix; the message names it.
    """
    prefix = submission.kafka_env.get(PREFIX_VARIABLE, "modelserving")
    for job in rest.jobs():
        if job.get("state") in ("FINISHED", "CANCELED", "FAILED"):
            continue
        other = recorded_submission(job["jid"], state_dir)
        if other is not None and other.kafka_env.get(PREFIX_VARIABLE, "modelserving") == prefix:
            raise ConfigError(
                f"job {job['jid']} ({job.get('state', '?').lower()}) already uses the transactional-id prefix "
                f"{prefix!r}: a second job with it would fence the first's Kafka transactions; "
                "give this one its own (transactional_id_prefix)"
            )


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
    record = {**jsonable(asdict(submission)), "jobmanager": address, "submitted_at": time.time()}
    (records / f"{job_id}.json").write_text(json.dumps(record, indent=2))


def recorded_submission(job_id: str, state_dir: Path | None = None) -> Submission | None:
    """What ``job_id`` was submitted with from this state directory, if it was."""
    path = Path(state_dir or default_state_dir()) / "submissions" / f"{check_job_id(job_id)}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    names = set(Submission.__dataclass_fields__)
    fields = {k: v for k, v in record.items() if k in names}
    fields["job_args"] = tuple(fields.get("job_args", ()))
    return Submission(**fields)


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
        return strip_exception_classes(causes[-1])
    for line in reversed(lines):
        if line.strip() and not line.startswith(("\tat ", "    at ")):
            return strip_exception_classes(line.strip())
    return "no output"
