"""A real standalone Flink cluster and a real Kafka broker, each started once per session.

The cluster runs from pyflink/bin with its own FLINK_CONF_DIR, logs, pid
files and savepoints under the session's tmp directory, on free ports (never
8081/6123), so it cannot collide with a developer's cluster. Both are stopped
at the end of the session, also when a test or the start itself fails.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from serving.clock import now_ms
from serving.kafka.clients import producer
from serving.kafka.settings import KafkaSettings
from serving.ops.broker import LocalBroker, free_port
from serving.ops.cluster.config import STATE_ENV, ClusterOptions
from serving.ops.cluster.errors import ClusterError
from serving.ops.cluster.local import LocalCluster
from serving.ops.cluster.rest import FlinkRest
from serving.records.wine import encode_record
from tests.integration.conftest import kafka_settings  # noqa: F401 - the fixture, with topics unique per test

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    """A running broker for the session; stopped at its end."""
    local = LocalBroker(state_dir=tmp_path_factory.mktemp("kafka"))
    try:
        yield local.start(port=0)
    finally:
        local.stop()


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
    env = {**os.environ, STATE_ENV: str(flink_cluster.state_dir), "MODELSERVING_LOG_LEVEL": "WARNING"}

    def run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [sys.executable, "-m", "serving.cli", *args], env=env, capture_output=True, text=True, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"modelserving {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        return proc

    return run


def kafka_config_file(settings: KafkaSettings, path: Path) -> Path:
    """A TOML ``--kafka-config`` with the test's broker, group, prefix and topics."""
    topics = "".join(f'{role} = "{topic}"\n' for role, topic in settings.topics.all().items())
    path.write_text(
        "[kafka]\n"
        f'bootstrap_servers = "{settings.bootstrap_servers}"\n'
        f'group_id = "{settings.group_id}"\n'
        f'transactional_id_prefix = "{settings.transactional_id_prefix}"\n'
        f"[kafka.topics]\n{topics}"
    )
    return path


class Publisher:
    """Wine records with ids 0, 1, 2, ... and ``ts`` = send time, at ``rate``/s, in a thread, until stopped."""

    def __init__(self, settings: KafkaSettings, rows, rate: float = 100.0) -> None:
        self.settings, self.rows, self.rate = settings, rows, rate
        self.sent = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="publisher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        out = producer(self.settings)
        batch = max(1, int(self.rate / 10))
        while not self._stop.is_set():
            for _ in range(batch):
                i = self.sent
                record = encode_record(str(i), self.rows[i % len(self.rows)], ts=now_ms())
                out.produce(self.settings.topics.data, record)
                self.sent = i + 1
            out.poll(0)
            time.sleep(0.1)
        out.flush(30)

    def stop(self) -> int:
        """Stop publishing; returns how many records were sent (all flushed)."""
        self._stop.set()
        self._thread.join(60)
        return self.sent
