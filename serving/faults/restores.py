"""Faults that crash the whole cluster: the JobManager SIGKILLed with no HA, then a restore by hand.

Without high availability a lost JobManager takes the job with it: the
operator restarts the cluster and resubmits the job from the latest
retained checkpoint (``RETAIN_ON_CANCELLATION``, set by the cluster's
config). Meanwhile the Kafka transactions the old job had open linger on
the broker until the restored job's sinks abort them, or they time out.
These scenarios check that such transactions exist at the crash (else the
run proves little), then restore and let the oracle judge the output.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path

from serving.faults.evidence import output_topics, partition_offsets
from serving.faults.progress import completed_checkpoints, wait_all_running
from serving.faults.scenarios import kill_all
from serving.faults.stage import Stage
from serving.logs import get_logger
from serving.ops.cluster.errors import ClusterError
from serving.ops.cluster.rest import FlinkRest
from serving.ops.cluster.submit import submit

log = get_logger("faults")

#: The checkpoint interval of a job restored only to be crashed again: long enough that none completes.
NEVER_CHECKPOINT_MS = 600_000


def kill_jobmanager(stage: Stage) -> str:
    """SIGKILL the JobManager, restart the cluster, resubmit the job from its latest retained checkpoint."""
    killed = _kill_jobmanager(stage)
    checkpoint = latest_checkpoint(stage)
    lingering = open_transactions(stage)
    _restore(stage, checkpoint)
    return (
        f"JobManager {killed} SIGKILLed with {_lingering(lingering)}; "
        f"cluster restarted, job restored from {checkpoint.name} as {stage.job_id}"
    )


def kill_jobmanager_twice(stage: Stage) -> str:
    """Crash, restore a checkpoint, crash the restored job before it checkpoints, restore the same checkpoint again.

    The first restored job runs with checkpoints effectively off, so it
    commits nothing of its own: everything it wrote lingers in open
    transactions, which the second restore must abort, not commit.
    """
    first = _kill_jobmanager(stage)
    checkpoint = latest_checkpoint(stage)
    _restore(stage, checkpoint, checkpoint_interval_ms=NEVER_CHECKPOINT_MS)
    if wait_all_running(stage.rest, stage.job_id, 180.0, left_first=False) is None:
        raise RuntimeError(f"the job restored from {checkpoint} did not run within 180 s")
    time.sleep(5.0)  # let the restored job write into transactions of its own
    if completed_checkpoints(stage.rest, stage.job_id)[0]:
        raise RuntimeError("the job restored to be crashed again completed a checkpoint: the scenario proves nothing")
    second = _kill_jobmanager(stage)
    lingering = open_transactions(stage)
    _restore(stage, checkpoint)
    return (
        f"JobManager {first} SIGKILLed, {checkpoint.name} restored; JobManager {second} SIGKILLed with "
        f"{_lingering(lingering)}; {checkpoint.name} restored again as {stage.job_id}"
    )


def restore_after_transaction_timeout(stage: Stage) -> str:
    """Negative control: crash right after a savepoint, stay down past the transaction timeout, restore it.

    A savepoint's Kafka transactions are only pre-committed: the next
    checkpoint commits them (a savepoint may never be restored, so it never
    commits side effects). Crashing before that checkpoint and restoring
    after the broker aborted them (``transaction.timeout.ms`` < the time
    down) loses their records: C1 must fail and the log scan (C7) must see
    the connector's data-loss message.
    """
    assert stage.submission is not None
    savepoint = stage.rest.trigger_savepoint(stage.job_id, str(stage.work_dir / "savepoints"))
    killed = _kill_jobmanager(stage, taskmanagers_too=True)
    checkpoints = _checkpoints(stage)
    lingering = open_transactions(stage)
    time.sleep(stage.restore_after_s)
    _restore(stage, Path(savepoint.removeprefix("file:")))
    savepoint_id = _restored_id(stage.rest, stage.job_id)
    newer = [p.name for p in checkpoints if savepoint_id is None or _number(p) > savepoint_id]
    note = f"; checkpoints after the savepoint ({', '.join(newer)}) committed its transactions" if newer else ""
    return (
        f"savepoint {savepoint_id} taken, JobManager {killed} and TaskManagers SIGKILLed with "
        f"{_lingering(lingering)}; down {stage.restore_after_s:.0f}s, restored from the savepoint as "
        f"{stage.job_id}{note}"
    )


def latest_checkpoint(stage: Stage) -> Path:
    """The newest complete (``_metadata`` written) retained checkpoint of the stage's job.

    Raises:
        RuntimeError: The job retained no complete checkpoint.
    """
    found = _checkpoints(stage)
    if not found:
        raise RuntimeError(f"job {stage.job_id} retained no complete checkpoint")
    return max(found, key=_number)


def open_transactions(stage: Stage) -> list[str]:
    """``topic[partition]`` of every output partition whose last stable offset trails its high watermark."""
    assert stage.settings is not None
    offsets = partition_offsets(stage.settings, output_topics(stage.settings))
    return [f"{o.topic}[{o.partition}]" for o in offsets if o.lso < o.high]


def _kill_jobmanager(stage: Stage, taskmanagers_too: bool = False) -> int:
    pids = stage.cluster.jobmanager_pids()
    if not pids:
        raise RuntimeError("no JobManager is running")
    kill_all([*pids, *(stage.cluster.taskmanager_pids() if taskmanagers_too else ())])
    time.sleep(1.0)  # the TaskManagers keep writing into their open transactions until they notice
    return pids[0]


def _restore(stage: Stage, location: Path, checkpoint_interval_ms: int | None = None) -> None:
    """Stop what is left of the cluster, start it again, resubmit the job from ``location``."""
    assert stage.submission is not None and stage.cluster_options is not None
    stage.cluster.stop()
    stage.cluster.start(stage.cluster_options)
    stage.rest = FlinkRest(stage.cluster.rest or "")
    interval = checkpoint_interval_ms or stage.submission.checkpoint_interval_ms
    restored = dataclasses.replace(stage.submission, from_savepoint=str(location), checkpoint_interval_ms=interval)
    stage.job_id = submit(restored, stage.cluster.rest or "", stage.work_dir)
    stage.restores += 1
    log.info("job restored", extra={"job": stage.job_id, "from": str(location)})


def _checkpoints(stage: Stage) -> list[Path]:
    assert stage.cluster_options is not None
    root = stage.cluster_options.checkpoints / stage.job_id
    return [p for p in root.glob("chk-*") if (p / "_metadata").is_file()]


def _number(checkpoint: Path) -> int:
    return int(checkpoint.name.removeprefix("chk-"))


def _restored_id(rest: FlinkRest, job_id: str, timeout: float = 60.0) -> int | None:
    """The id of the checkpoint or savepoint the job restored (None if the REST API never says in ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ClusterError):
            restored = (rest.checkpoints(job_id).get("latest") or {}).get("restored") or {}
            if "id" in restored:
                return int(restored["id"])
        time.sleep(1.0)
    return None


def _lingering(partitions: list[str]) -> str:
    if not partitions:
        return "no open transaction on the outputs"
    return f"open transactions on {len(partitions)} output partitions ({', '.join(partitions[:4])})"
