"""The keyed job on a real broker: kill -9 and resume, a broker lost mid-run, a broker down at start.

(Kafka in, Kafka out with a swap mid-stream is in test_swap_rule.py and
test_selection_modes.py, and at parallelism 2 under faults in
tests/cluster/test_faults.py.)

The job runs as ``python -m flink_jobs.main`` in its own process group
(``serving.ops.jobprocess.LocalJob``), as the demo and a crash would have it;
results are read with read_committed.
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time

import pytest

from flink_jobs.control import latest_checkpoint
from serving.clock import now_ms
from serving.kafka.clients import producer
from serving.ops.jobprocess import LocalJob
from serving.ops.processes import child_environment
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.records import wine
from serving.records.wine import encode_record
from serving.testing import model_message as model
from tests.support.kafka import read_all, results, send, wait_for_event

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]


#: Flags for a crash while batches are open: with a 3 s event-time slot and a 3 s
#: idle flush, records wait up to 3 s in the record buffer, so every (1 s)
#: checkpoint, the restored one included, holds records that only the buffer has:
#: their offsets are behind the checkpointed source position and they are not
#: results yet. A buffer outside checkpointed state would lose them.
MID_BATCH = ("--batch-wait-ms", "3000", "--idle-flush-ms", "3000", "--batch-size", "64")


@pytest.mark.parametrize("job_args", [(), MID_BATCH], ids=["default", "mid-batch"])
def test_crash_and_resume_from_the_last_checkpoint_loses_and_duplicates_nothing(
    kafka_settings, tmp_path, wine_data, job_args
):
    process = LocalJob(kafka_settings, "keyed", tmp_path, name="job1", job_args=job_args)
    checkpoints = process.checkpoint_dir
    rows = wine.read_wine_csv(wine.reference_csv()).features
    send(kafka_settings, kafka_settings.topics.models, [model("forest", "F", now_ms())], key=b"wine")
    try:
        assert wait_for_event(kafka_settings, "F").kind == ModelEvent.ACCEPTED
        out = producer(kafka_settings)
        sent = 0
        # Stream records until some results are committed and a checkpoint exists, then crash.
        while sent < len(rows):
            out.produce(kafka_settings.topics.data, encode_record(str(sent), rows[sent], ts=now_ms()))
            sent += 1
            if sent % 100 == 0:
                out.flush(10)
                time.sleep(0.3)
                if (
                    sent >= 600
                    and latest_checkpoint(checkpoints)
                    and read_all(kafka_settings, kafka_settings.topics.results, 1, 5)
                ):
                    break
        out.flush(10)
    finally:
        process.kill()
    restore = latest_checkpoint(checkpoints)
    assert restore, "no checkpoint completed before the crash"
    # The rest arrives while the job is down.
    send(
        kafka_settings,
        kafka_settings.topics.data,
        [encode_record(str(i), rows[i], ts=now_ms()) for i in range(sent, len(rows))],
    )
    process = LocalJob(kafka_settings, "keyed", tmp_path, restore=restore, name="job2", job_args=job_args)
    try:
        got = results(kafka_settings, len(rows), timeout=180)
        time.sleep(3)  # a duplicate would arrive after the last expected result
        got = [ServingResult.FromString(v) for v in read_all(kafka_settings, kafka_settings.topics.results, None, 10)]
    finally:
        process.stop()
    counts = collections.Counter(r.record_id for r in got)
    assert set(counts) == {str(i) for i in range(len(rows))}, f"lost {len(rows) - len(counts)} records"
    assert max(counts.values()) == 1, "duplicates in committed results"
    assert {r.model_version for r in got} == {"F"}


def test_job_with_broker_down_at_start_fails_with_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "flink_jobs.main", "--local", "--bootstrap-servers", "127.0.0.1:1"],
        env=child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(lines) == 1 and "127.0.0.1:1" in lines[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


def test_broker_lost_mid_run_the_job_recovers_and_loses_nothing(tmp_path, wine_data):
    from serving.kafka.clients import ensure_topics
    from serving.kafka.settings import KafkaSettings
    from serving.ops.broker import LocalBroker

    local = LocalBroker(state_dir=tmp_path / "kafka")
    status = local.start(port=0)
    port = int(status.bootstrap.rsplit(":", 1)[1])
    settings = KafkaSettings.load(bootstrap_servers=status.bootstrap, group_id="lost", transactional_id_prefix="lost")
    ensure_topics(settings)
    rows = wine_data.features[:1000]
    process = LocalJob(settings, "keyed", tmp_path, restart_attempts=30)
    try:
        send(settings, settings.topics.models, [model("linear", "L", now_ms())], key=b"wine")
        assert wait_for_event(settings, "L").kind == ModelEvent.ACCEPTED
        send(settings, settings.topics.data, [encode_record(str(i), r, ts=now_ms()) for i, r in enumerate(rows[:500])])
        results(settings, 500)
        local.stop()
        time.sleep(8)  # the job loses its broker: sources stall, the sink fails a checkpoint, Flink restarts
        assert local.start(port=port).running
        send(
            settings,
            settings.topics.data,
            [encode_record(str(i), r, ts=now_ms()) for i, r in enumerate(rows[500:], 500)],
        )
        got = results(settings, len(rows), timeout=240)
        assert process.alive, "the job died instead of recovering"
    finally:
        process.stop()
        local.stop()
    counts = collections.Counter(r.record_id for r in got)
    assert set(counts) == {str(i) for i in range(len(rows))} and max(counts.values()) == 1
