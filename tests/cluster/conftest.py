"""A real standalone Flink cluster and a real Kafka broker, each started once per session.

The cluster runs from pyflink/bin with its own FLINK_CONF_DIR, logs, pid
files and savepoints under the session's tmp directory, on free ports (never
8081/6123), so it cannot collide with a developer's cluster. Both are stopped
at the end of the session, also when a test or the start itself fails.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from serving.ops.broker import free_port
from serving.ops.cluster.config import STATE_ENV, ClusterOptions
from serving.ops.cluster.errors import ClusterError
from serving.ops.cluster.local import LocalCluster
from serving.ops.cluster.rest import FlinkRest
from serving.ops.processes import child_environment

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]


@pytest.fixture(scope="session")
def flink_cluster(tmp_path_factory) -> LocalCluster:
    """A JobManager and one TaskManager with 2 slots; stopped at the end of the session."""
    state = tmp_path_factory.mktemp("flink")
    cluster = LocalCluster(state)
    options = ClusterOptions(
        rest_port=free_port(),
        rpc_port=free_port(),
        slots=2,
        savepoint_dir=state / "savepoints",
        taskmanager_memory="2048m",
        jobmanager_memory="1024m",
    )
    started = time.monotonic()
    try:
        cluster.start(options)
        print(f"\nflink cluster up in {time.monotonic() - started:.0f}s at {cluster.rest} (state {state})")
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def rest(flink_cluster) -> FlinkRest:
    """The session cluster's REST API."""
    return FlinkRest(flink_cluster.rest)


@pytest.fixture(autouse=True)
def _clean_cluster(request):
    """After each test: cancel its jobs, and make sure a TaskManager serves the next one."""
    yield
    if "flink_cluster" not in request.fixturenames:
        return
    cluster = request.getfixturevalue("flink_cluster")
    api = FlinkRest(cluster.rest)
    for job in api.jobs():
        if job["state"] not in ("FINISHED", "CANCELED", "FAILED"):
            try:
                api.cancel(job["jid"], timeout=60)
            except ClusterError as exc:
                print(f"could not cancel {job['jid']}: {exc}")
    if not cluster.taskmanager_pids():
        cluster.add_taskmanager()


@pytest.fixture
def cli(flink_cluster):
    """Run ``modelserving ARGS`` against the session cluster; returns the completed process."""
    env = {**child_environment(), STATE_ENV: str(flink_cluster.state_dir), "MODELSERVING_LOG_LEVEL": "WARNING"}

    def run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "serving.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"modelserving {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    return run
