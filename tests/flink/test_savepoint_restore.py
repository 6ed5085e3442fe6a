"""Stop with a savepoint, restore at another parallelism: the model comes back from state.

Inputs are watched directories (unbounded, like Kafka), so the job is still
running when it is stopped, and the restored file source does not read the
model file again.
"""

from __future__ import annotations

import collections

import pytest

from flink_jobs.control import stop_with_savepoint
from flink_jobs.environment import create_environment
from flink_jobs.io.files import FileIO, read_json_lines, write_base64_lines
from flink_jobs.jobs import build_job
from serving.clock import now_ms
from serving.settings import JOB_NAMES, JobSettings, ServingOptions
from serving.testing import model_message as model
from serving.testing import wine_records as records
from tests.support.waiting import wait_for

pytestmark = pytest.mark.flink

HALF = 800


def start(job, parallelism, io, restore_from=None):
    settings = JobSettings(
        job=job,
        parallelism=parallelism,
        checkpoint_interval_ms=500,
        restore_from=restore_from,
        options=ServingOptions(idle_flush_ms=300),
    )
    env = create_environment(settings)
    build_job(env, settings, io)
    return env.execute_async(JOB_NAMES[job])


@pytest.mark.parametrize("job", ["keyed", "partitioned"])
def test_restore_at_parallelism_2_serves_with_the_model_from_state(tmp_path, wine_data, job):
    data_dir, model_dir, out = tmp_path / "data", tmp_path / "models", tmp_path / "out"
    data_dir.mkdir(), model_dir.mkdir()
    io = FileIO(data_dir, model_dir, out, monitor_ms=200)
    t = now_ms()
    stream = records(wine_data.features, t0=t + 1)

    def count(output):
        return len(read_json_lines(out, output))

    client = start(job, 1, io)
    try:
        write_base64_lines(model_dir / "a.b64", [model("forest", "A", t)])
        wait_for(lambda: count("model-events") == 1, "model A to be accepted", timeout=90)
        write_base64_lines(data_dir / "part1.b64", stream[:HALF])
        wait_for(lambda: count("results") == HALF, "the first half of the results", timeout=90)
        savepoint = stop_with_savepoint(client, str(tmp_path / "savepoints"))
    except BaseException:
        client.cancel()
        raise
    events_before = read_json_lines(out, "model-events")

    client = start(job, 2, io, restore_from=savepoint)
    try:
        write_base64_lines(data_dir / "part2.b64", stream[HALF:])
        wait_for(lambda: count("results") >= len(stream), "the second half of the results", timeout=120)
    finally:
        client.cancel().result()

    results = read_json_lines(out, "results")
    ids = collections.Counter(r["record_id"] for r in results)
    assert set(ids) == {str(i) for i in range(len(stream))} and max(ids.values()) == 1
    assert {r["model_version"] for r in results} == {"A"}
    # Nothing was sent again, and the restored job needed nothing: no new model events.
    assert read_json_lines(out, "model-events") == events_before
    assert [e["kind"] for e in events_before] == ["ACCEPTED"]
