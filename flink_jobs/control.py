"""Controlling a running job from Python: savepoints and stop (MiniCluster or cluster client)."""

from __future__ import annotations

from pyflink.common.completable_future import CompletableFuture
from pyflink.common.job_client import JobClient
from pyflink.java_gateway import get_gateway

from flink_jobs.environment import as_uri


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
