"""``modelserving demo`` end to end: its own broker, a job, providers; results land on the results topic."""

from __future__ import annotations

import subprocess
import sys

import pytest

from serving.kafka.settings import KafkaSettings
from serving.ops.broker import LocalBroker
from serving.ops.jobprocess import child_environment
from serving.pb.serving_result_pb2 import ServingResult
from tests.conftest import REFERENCE_MODELS
from tests.support.kafka import read_all

pytestmark = [pytest.mark.kafka, pytest.mark.flink]


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
    assert "demo finished" in proc.stderr
