"""Savepoints taken by the previous release restore in this one.

``tests/data/savepoints/pre-batches/<job>/`` were taken by the release before
records crossed to Python in batches (commit 420354c, with
``scripts/make-release-savepoints.py``): model A (linear PMML) accepted, 400
records scored. This release adds the ``bundle-records`` and
``split-results`` operators and changes what the serving functions take, not
their state, so the savepoint must restore: the model comes back from state
and serves new records without being sent again.
"""

from __future__ import annotations

import collections
import json
import shutil

import pytest

from flink_jobs.environment import create_environment
from flink_jobs.io.files import FileIO, read_json_lines, write_base64_lines
from flink_jobs.jobs import build_job
from serving.settings import JOB_NAMES, JobSettings, ServingOptions
from serving.testing import T0
from serving.testing import wine_records as records
from tests.support.reference import PROJECT_ROOT
from tests.support.waiting import wait_for

pytestmark = pytest.mark.flink

RELEASE = PROJECT_ROOT / "tests" / "data" / "savepoints" / "pre-batches"
SCORED_BEFORE = 400


@pytest.mark.parametrize("job", ["keyed", "partitioned"])
def test_a_savepoint_of_the_release_before_batches_restores_and_serves_with_its_model(tmp_path, wine_data, job):
    savepoint = tmp_path / "savepoint"
    shutil.copytree(RELEASE / job, savepoint)  # Flink may write beside it; keep the committed copy clean
    events_before = [json.loads(line) for line in (RELEASE / job / "model-events.jsonl").read_text().splitlines()]
    assert [(e["kind"], e["version"]) for e in events_before] == [("ACCEPTED", "A")]
    data_dir, model_dir, out = tmp_path / "data", tmp_path / "models", tmp_path / "out"
    data_dir.mkdir(), model_dir.mkdir()
    settings = JobSettings(
        job=job,
        parallelism=2,
        checkpoint_interval_ms=500,
        restore_from=str(savepoint),
        options=ServingOptions(idle_flush_ms=300),
    )
    env = create_environment(settings)
    build_job(env, settings, FileIO(data_dir, model_dir, out, monitor_ms=200))
    client = env.execute_async(JOB_NAMES[job])
    new = records(wine_data.features[SCORED_BEFORE:800], prefix="after-", t0=T0 + 1 + SCORED_BEFORE)
    try:
        write_base64_lines(data_dir / "after.b64", new)
        wait_for(lambda: len(read_json_lines(out, "results")) >= len(new), "results after the restore", timeout=120)
    finally:
        client.cancel().result()
    results = read_json_lines(out, "results")
    ids = collections.Counter(r["record_id"] for r in results)
    assert set(ids) == {f"after-{i}" for i in range(len(new))} and max(ids.values()) == 1
    assert {(r["model_name"], r["model_version"]) for r in results} == {("linear", "A")}
    assert read_json_lines(out, "model-events") == []  # the model came from state, nothing was admitted again
