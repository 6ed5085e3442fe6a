"""The upgrade path: stop a job with a savepoint, submit the current code from it, confirm it runs."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from serving.errors import ConfigError
from serving.logs import get_logger
from serving.ops.cluster.config import JOB_NAMES
from serving.ops.cluster.errors import ClusterError
from serving.ops.cluster.rest import FlinkRest
from serving.ops.cluster.submit import Submission, recorded_submission, submit

log = get_logger("cluster")


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
    job_args = recorded.job_args if recorded else ()
    # validated before stopping
    submission = Submission(kind, new_parallelism, kafka_env, kafka_config, interval, job_args=job_args)
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
