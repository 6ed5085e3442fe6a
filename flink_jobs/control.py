"""Controlling a running job from Python: savepoints and stop (MiniCluster or cluster client)."""

from __future__ import annotations

from pathlib import Path

from pyflink.common.completable_future import CompletableFuture
from pyflink.common.job_client import JobClient
from pyflink.java_gateway import get_gateway

from serving.uris import as_uri


def _canonical():
    return get_gateway().jvm.org.apache.flink.core.execution.SavepointFormatType.CANONICAL


def stop_with_savepoint(client: JobClient, directory: str) -> str:
    """Stop the job after a savepoint into ``directory``; returns the savepoint path.

    ``JobClient.stop_with_savepoint`` in PyFlink 2.2 calls a Java signature that
    no longer exists (it lacks ``SavepointFormatType``), so call Java directly.
    """
    future = client._j_job_client.stopWithSavepoint(False, as_uri(directory), _canonical())
    return CompletableFuture(future, str).result()


def trigger_savepoint(client: JobClient, directory: str) -> str:
    """Take a savepoint into ``directory`` and keep the job running; returns its path."""
    future = client._j_job_client.triggerSavepoint(as_uri(directory), _canonical())
    return CompletableFuture(future, str).result()


def latest_checkpoint(checkpoint_dir: str | Path) -> str | None:
    """The newest completed checkpoint under ``checkpoint_dir`` (``<job id>/chk-N`` with ``_metadata``)."""
    root = Path(str(checkpoint_dir).removeprefix("file://"))
    completed = []
    for metadata in root.glob("*/chk-*/_metadata"):
        try:  # a running job deletes subsumed checkpoints: one listed a moment ago may be gone
            completed.append((metadata.stat().st_mtime, int(metadata.parent.name.split("-")[1]), metadata.parent))
        except FileNotFoundError:
            continue
    if not completed:
        return None
    return str(max(completed, key=lambda c: c[:2])[2])
