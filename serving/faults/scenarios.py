"""The faults a campaign injects, by name: what each does to the running cluster, broker or job.

A scenario is one function that injects one fault into a :class:`Stage` and
returns once the fault is over (a killed process replaced, a paused one
resumed); the runner calls it ``count`` times, each time only after a new
checkpoint completed, and measures the recovery. A new scenario is one
function (here, in :mod:`~serving.faults.restores` or :mod:`~serving.faults.mixes`)
plus its entry in :data:`serving.faults.catalog.SCENARIOS`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

from serving.faults.stage import Stage
from serving.logs import get_logger
from serving.ops.cluster.submit import submit

log = get_logger("faults")


def kill_taskmanager(stage: Stage) -> str:
    """Start a spare TaskManager, then SIGKILL one that runs the job's tasks."""
    before = set(stage.cluster.taskmanager_pids())
    spare = stage.cluster.add_taskmanager()
    victim = sorted(before)[0] if before else spare
    os.kill(victim, signal.SIGKILL)
    return f"TaskManager {victim} SIGKILLed (spare {spare} started first)"


def python_workers(stage: Stage) -> list[int]:
    """Pids of the Python workers (``pyflink.fn_execution``) under the cluster's TaskManagers."""
    managers = set(stage.cluster.taskmanager_pids())
    found = []
    for pid in _all_pids():
        if "pyflink.fn_execution" in _cmdline(pid) and _has_ancestor(pid, managers):
            found.append(pid)
    return sorted(found)


def orphan_workers(started_after: float = 0.0) -> list[int]:
    """PyFlink worker processes (the udf runner and its Python) with no JVM above them any more.

    A TaskManager that dies by SIGKILL leaves its workers behind, re-parented
    to init; on a real host they would hold memory and CPU until killed.
    Only processes started after ``started_after`` (epoch s) count, so a run
    never reports another's.
    """
    found = []
    for pid in _all_pids():
        command = _cmdline(pid)
        if "pyflink.fn_execution" not in command and "pyflink-udf-runner" not in command:
            continue
        if _started_at(pid) < started_after or _has_jvm_ancestor(pid):
            continue
        found.append(pid)
    return sorted(found)


def kill_all(pids: list[int]) -> None:
    """SIGKILL each of ``pids`` that still exists."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def kill_python_worker(stage: Stage) -> str:
    """SIGKILL the Python workers of one TaskManager (every ``beam_boot`` below it).

    A TaskManager runs one worker per task with Python operators; an idle one
    (the async remote-scoring operator without remote models) is not noticed
    dead until used, so killing one at random may fault nothing. Killing all of
    one TaskManager's fails the serving task for sure.
    """
    manager = sorted(stage.cluster.taskmanager_pids())[0]
    workers = [pid for pid in python_workers(stage) if _has_ancestor(pid, {manager})]
    if not workers:
        raise RuntimeError("no Python worker found under the TaskManager")
    kill_all(workers)
    return f"Python workers {', '.join(map(str, workers))} of TaskManager {manager} SIGKILLed"


def stall_python_worker(stage: Stage) -> str:
    """SIGSTOP one Python worker for ``worker_stall_s``, then SIGCONT (if it still exists)."""
    workers = python_workers(stage)
    if not workers:
        raise RuntimeError("no Python worker found under the TaskManagers")
    os.kill(workers[0], signal.SIGSTOP)
    time.sleep(stage.worker_stall_s)
    with contextlib.suppress(ProcessLookupError):
        os.kill(workers[0], signal.SIGCONT)
    return f"Python worker {workers[0]} stopped for {stage.worker_stall_s:.0f}s"


def kill_broker(stage: Stage) -> str:
    """SIGKILL the broker, keep it down ``broker_down_s``, start it again on the same port."""
    pid = stage.broker.status().pid
    if pid is None:
        raise RuntimeError("the broker is not running")
    os.kill(pid, signal.SIGKILL)
    time.sleep(stage.broker_down_s)
    stage.broker.start(port=stage.broker_port, tie_to_parent=True)
    return f"broker {pid} SIGKILLed, down {stage.broker_down_s:.0f}s"


def pause_broker(stage: Stage) -> str:
    """SIGSTOP the broker for ``broker_pause_s``, then SIGCONT."""
    pid = stage.broker.status().pid
    if pid is None:
        raise RuntimeError("the broker is not running")
    os.kill(pid, signal.SIGSTOP)
    try:
        time.sleep(stage.broker_pause_s)
    finally:
        os.kill(pid, signal.SIGCONT)
    return f"broker {pid} paused {stage.broker_pause_s:.0f}s"


class GuardMissing(AssertionError):
    """The negative control passed when it must fail: a second job with the same prefix was accepted."""


def submit_same_prefix(stage: Stage) -> str:
    """Submit a second job with the running job's transactional-id prefix: the pre-flight guard must refuse it."""
    from serving.errors import ConfigError

    assert stage.submission is not None
    try:
        clash = submit(stage.submission, stage.cluster.rest or "", stage.work_dir)
    except ConfigError as refused:
        return f"refused: {refused}"
    stage.rest.cancel(clash)
    raise GuardMissing(f"a second job with the same transactional-id prefix was accepted ({clash})")


def rescale(stage: Stage) -> str:
    """Stop the job with a savepoint and resume it from there at the other parallelism (2 -> 1 -> 2 ...).

    The job keeps its model from state (no model is sent again) and its
    transactional-id prefix; the stopped job is FINISHED, so the prefix
    guard lets the new one in.
    """
    import dataclasses

    assert stage.submission is not None
    savepoint = stage.rest.stop_with_savepoint(stage.job_id, str(stage.work_dir / "savepoints"))
    parallelism = 1 if stage.submission.parallelism > 1 else 2
    stage.submission = dataclasses.replace(stage.submission, parallelism=parallelism, from_savepoint=savepoint)
    old = stage.job_id
    stage.job_id = submit(stage.submission, stage.cluster.rest or "", stage.work_dir)
    return f"job {old} stopped with a savepoint, resumed as {stage.job_id} at parallelism {parallelism}"


def _all_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0
    return int(stat.rsplit(")", 1)[1].split()[1])


def _has_jvm_ancestor(pid: int) -> bool:
    return any(_cmdline(a).split(" ", 1)[0].endswith("java") for a in _ancestors(pid))


def _started_at(pid: int) -> float:
    """When ``pid`` started (epoch s), from /proc; 0.0 when unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        boot = next(
            float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime")
        )
    except (OSError, ValueError, IndexError, StopIteration):
        return 0.0
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _has_ancestor(pid: int, ancestors: set[int]) -> bool:
    return any(a in ancestors for a in _ancestors(pid))


def _ancestors(pid: int, limit: int = 64):
    """The parents of ``pid`` up to init, nearest first (at most ``limit``)."""
    for _ in range(limit):
        pid = _parent(pid)
        if pid <= 1:
            return
        yield pid
