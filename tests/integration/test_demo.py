"""``modelserving demo`` end to end: its own broker, a job, providers; results land on the results topic."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from serving.kafka.settings import KafkaSettings
from serving.ops.broker import LocalBroker
from serving.ops.processes import child_environment
from serving.pb.serving_result_pb2 import ServingResult
from tests.support.kafka import read_all
from tests.support.processes import alive, descendants
from tests.support.reference import REFERENCE_MODELS

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]


def test_demo_runs_end_to_end_and_results_reach_kafka(tmp_path):
    state = tmp_path / "kafka"
    args = [
        sys.executable, "-m", "serving.cli", "demo", "--duration", "20", "--port", "0", "--rate", "40",
        "--swap-every", "10", "--state-dir", str(state), "--work-dir", str(tmp_path / "work"), "--keep-broker",
    ]  # fmt: skip
    proc = subprocess.run(
        args,
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    broker = LocalBroker(state_dir=state)
    try:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr
        status = broker.status()
        assert status.running
        settings = KafkaSettings.load(bootstrap_servers=status.bootstrap)
        results = [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, None, 30)]
    finally:
        broker.stop()
    assert results, "no results on the results topic"
    reference = {p.stem for p in REFERENCE_MODELS.iterdir()}
    assert {r.model_name for r in results} <= reference
    assert all(r.model_version and r.record_id.startswith("demo-") for r in results)
    assert len({(r.model_name, r.model_version) for r in results}) >= 2, "no model swap happened in the demo"
    assert "demo finished" in proc.stderr


def test_sigterm_stops_the_demo_and_everything_it_started(tmp_path):
    """As a supervisor, `docker stop` or a CI time-out stops it: SIGTERM, not Ctrl-C.

    Before the fix, the broker and the Flink job were left running, orphaned to pid 1.
    """
    state, work = tmp_path / "kafka", tmp_path / "work"
    args = [
        sys.executable, "-m", "serving.cli", "demo", "--port", "0", "--rate", "40",
        "--state-dir", str(state), "--work-dir", str(work),
    ]  # fmt: skip
    demo = subprocess.Popen(args, env=child_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        job_log = work / "job.log"
        while time.monotonic() < deadline and demo.poll() is None:
            if job_log.exists() and "job starting" in job_log.read_text(errors="replace"):
                break
            time.sleep(1)
        assert demo.poll() is None, "the demo ended by itself"
        started = descendants(demo.pid)
        assert LocalBroker(state_dir=state).status().running and len(started) >= 2
        demo.send_signal(signal.SIGTERM)
        _, stderr = demo.communicate(timeout=120)
    finally:
        if demo.poll() is None:
            demo.kill()
    assert demo.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 30
    while alive(started) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert alive(started) == set(), "processes the demo started outlived it"
    assert not LocalBroker(state_dir=state).status().running
