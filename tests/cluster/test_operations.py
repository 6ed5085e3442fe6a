"""Operating the serving jobs on a real standalone cluster with a real broker.

Upgrades (stop with a savepoint, resubmit at parallelism 2) and the errors a
user meets (a lost TaskManager: test_faults.py, through `modelserving faults`). Results are read with
read_committed; records are published continuously, also while a job is
down, and must come out exactly once.
"""

from __future__ import annotations

import collections
import time
from pathlib import Path

import pytest

from serving.clock import now_ms
from serving.ops.broker import free_port
from serving.ops.cluster.config import JOB_NAMES
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.records import wine
from serving.testing import model_message as model
from serving.uris import local_path
from tests.support.kafka import Publisher, kafka_config_file, read_all, send, wait_for_event

pytestmark = [pytest.mark.cluster, pytest.mark.kafka, pytest.mark.heavy]

ROWS = wine.read_wine_csv(wine.reference_csv()).features


def committed_results(settings, at_least: int, timeout: float = 180) -> list[ServingResult]:
    """Every committed result, once there are ``at_least`` (and nothing more arrives for a few seconds)."""
    deadline = time.monotonic() + timeout
    got: list[bytes] = []
    while time.monotonic() < deadline:
        got = read_all(settings, settings.topics.results, timeout=10)
        if len(got) >= at_least:
            time.sleep(3)  # a duplicate would commit with a later checkpoint
            return [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, timeout=15)]
    raise AssertionError(f"{len(got)} committed results after {timeout}s, expected {at_least}")


def wait_results(settings, count: int, timeout: float = 120) -> None:
    """Wait until at least ``count`` results are committed."""
    got = read_all(settings, settings.topics.results, count, timeout)
    assert len(got) >= count, f"only {len(got)} of {count} results committed within {timeout}s"


def assert_exactly_once(got: list[ServingResult], sent: int) -> None:
    counts = collections.Counter(r.record_id for r in got)
    missing = {str(i) for i in range(sent)} - set(counts)
    assert not missing, f"lost {len(missing)} records, e.g. {sorted(missing, key=int)[:5]}"
    duplicated = {k: v for k, v in counts.items() if v > 1}
    assert not duplicated, f"{len(duplicated)} records duplicated, e.g. {list(duplicated.items())[:5]}"
    assert len(counts) == sent


def vertex_parallelism(rest, job_id: str, name: str) -> int:
    return next(v["parallelism"] for v in rest.job(job_id)["vertices"] if name in v["name"])


def start_job(cli, kafka_settings, tmp_path, job: str, version: str, *extra: str) -> tuple[str, Path]:
    """Publish model ``version`` (before the job: the model source starts at the earliest offset), submit."""
    config = kafka_config_file(kafka_settings, tmp_path / "kafka.toml")
    send(kafka_settings, kafka_settings.topics.models, [model("linear", version, now_ms())], key=b"wine")
    proc = cli("submit", job, "--detached", "--kafka-config", str(config), "--checkpoint-interval", "1000", *extra)
    job_id = proc.stdout.split()[-1]
    assert len(job_id) == 32, proc.stdout
    assert wait_for_event(kafka_settings, version).kind == ModelEvent.ACCEPTED
    return job_id, config


def test_upgrade_keyed_job_to_parallelism_2_serves_with_the_model_from_the_savepoint(
    cli, rest, flink_cluster, kafka_settings, tmp_path
):
    old_job, _ = start_job(cli, kafka_settings, tmp_path, "keyed", "A")
    publisher = Publisher(kafka_settings, ROWS)
    try:
        wait_results(kafka_settings, 200)
        events_before = read_all(kafka_settings, kafka_settings.topics.model_events, timeout=5)

        proc = cli("upgrade", old_job, "--parallelism", "2")  # stop with savepoint, resubmit, confirm running
        new_job = proc.stdout.split()[-1]
        restored_from = publisher.sent  # every record from here on is the new job's
        assert "stopped with savepoint" in proc.stderr
        savepoint = proc.stderr.split("stopped with savepoint ")[1].split(";")[0]
        assert (local_path(savepoint) / "_metadata").is_file()
        assert Path(flink_cluster.state_dir / "savepoints") in local_path(savepoint).parents

        assert rest.job(old_job)["state"] == "FINISHED"
        assert rest.job(new_job)["state"] == "RUNNING"
        assert vertex_parallelism(rest, new_job, "ModelServingKeyed") == 2
        restored = rest.checkpoints(new_job)["latest"]["restored"]
        assert restored["is_savepoint"] and local_path(restored["external_path"]) == local_path(savepoint)
        wait_results(kafka_settings, restored_from + 300)
    finally:
        sent = publisher.stop()
    got = committed_results(kafka_settings, sent)

    assert_exactly_once(got, sent)
    assert {r.model_version for r in got} == {"A"}
    after = [r for r in got if int(r.record_id) >= restored_from]
    assert len(after) >= 300 and {r.model_version for r in after} == {"A"}, "served without its model"
    # No model was sent again, and the restored job needed none: no new model event.
    assert read_all(kafka_settings, kafka_settings.topics.model_events, timeout=5) == events_before
    assert [ModelEvent.FromString(e).kind for e in events_before] == [ModelEvent.ACCEPTED]
    lines = cli("jobs").stdout
    assert f"{new_job}  {JOB_NAMES['keyed']}" in lines and "RUNNING" in lines


def test_partitioned_job_savepoint_stop_and_resubmit_at_parallelism_2(
    cli, rest, flink_cluster, kafka_settings, tmp_path
):
    old_job, config = start_job(cli, kafka_settings, tmp_path, "partitioned", "P")
    publisher = Publisher(kafka_settings, ROWS)
    try:
        wait_results(kafka_settings, 200)
        # A savepoint that keeps the job running, to the directory asked for.
        taken = cli("savepoint", old_job, "--dir", str(tmp_path / "manual")).stdout.strip()
        assert (local_path(taken) / "_metadata").is_file() and local_path(taken).parent == tmp_path / "manual"
        assert rest.job(old_job)["state"] == "RUNNING"
        events_before = read_all(kafka_settings, kafka_settings.topics.model_events, timeout=5)

        savepoint = cli("stop", old_job, "--savepoint").stdout.strip()  # the cluster's default directory
        assert (local_path(savepoint) / "_metadata").is_file()
        assert rest.job(old_job)["state"] == "FINISHED"
        time.sleep(2)  # records keep arriving while no job runs
        proc = cli(
            "submit", "partitioned", "--detached", "--parallelism", "2", "--from-savepoint", savepoint,
            "--kafka-config", str(config), "--checkpoint-interval", "1000",
        )  # fmt: skip
        new_job = proc.stdout.split()[-1]
        rest.wait_running(new_job)
        restored_from = publisher.sent
        assert vertex_parallelism(rest, new_job, "ModelServingPartitioned") == 2
        wait_results(kafka_settings, restored_from + 300)
    finally:
        sent = publisher.stop()
    got = committed_results(kafka_settings, sent)

    assert_exactly_once(got, sent)
    after = [r for r in got if int(r.record_id) >= restored_from]
    assert len(after) >= 300 and {r.model_version for r in after} == {"P"}, "served without its model"
    assert {r.model_version for r in got} == {"P"}
    assert read_all(kafka_settings, kafka_settings.topics.model_events, timeout=5) == events_before


def test_submit_to_a_cluster_that_is_down_is_one_line(cli, kafka_settings):
    port = free_port()
    proc = cli("submit", "keyed", "--jobmanager", f"127.0.0.1:{port}", check=False, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"modelserving submit: error: no Flink cluster answered at http://127.0.0.1:{port} (Connection refused); "
        "start one with `modelserving cluster start` or pass --jobmanager HOST:PORT"
    ]


def test_restore_from_a_savepoint_that_does_not_exist_is_one_line(cli, rest, kafka_settings, tmp_path):
    config = kafka_config_file(kafka_settings, tmp_path / "kafka.toml")
    missing = tmp_path / "savepoint-000000-000000000000"
    jobs_before = {j["jid"] for j in rest.jobs()}

    proc = cli("submit", "keyed", "--detached", "--from-savepoint", str(missing), "--kafka-config", str(config),
               check=False)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"modelserving submit: error: savepoint {missing} does not exist"]
    assert {j["jid"] for j in rest.jobs()} == jobs_before, "a job was submitted anyway"

    # Submitted as to a remote cluster (no local state to check against): Flink's own reason, in one line.
    proc = cli(
        "submit", "keyed", "--detached", "--from-savepoint", str(missing), "--kafka-config", str(config),
        "--jobmanager", rest.address, "--state-dir", str(tmp_path / "elsewhere"), check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("modelserving submit: error: Cannot find checkpoint or savepoint")
    assert str(missing) in lines[0]
