"""Take the savepoints that ``tests/flink/test_release_savepoints.py`` restores, with the code checked out now.

Run it on the release whose savepoints the next one must restore, e.g.::

    git worktree add /tmp/release <commit> && cp -r serving/pb /tmp/release/serving/
    PYTHONPATH=/tmp/release .venv/bin/python scripts/make-release-savepoints.py tests/data/savepoints/<name>

Per job (keyed, partitioned; parallelism 1): model A (linear PMML) is
accepted, records 0..399 are scored, then the job stops with a savepoint,
which is copied to ``OUT/<job>/`` (its ``_metadata`` only holds state this
small). ``OUT/<job>/model-events.jsonl`` keeps the events the job emitted.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

from flink_jobs.control import stop_with_savepoint
from flink_jobs.environment import create_environment
from flink_jobs.io.files import FileIO, read_json_lines, write_base64_lines
from flink_jobs.jobs import build_job
from serving.records import wine
from serving.settings import JOB_NAMES, JobSettings, ServingOptions
from serving.testing import T0, model_message, wine_records

RECORDS = 400


def main(out: Path) -> None:
    """Take one savepoint per job into ``out/<job>/``."""
    features = wine.read_wine_csv(wine.reference_csv()).features
    for job in ("keyed", "partitioned"):
        work = Path(tempfile.mkdtemp(prefix=f"release-{job}-"))
        data_dir, model_dir, outputs = work / "data", work / "models", work / "out"
        data_dir.mkdir(), model_dir.mkdir()
        settings = JobSettings(job=job, checkpoint_interval_ms=500, options=ServingOptions(idle_flush_ms=300))
        env = create_environment(settings)
        build_job(env, settings, FileIO(data_dir, model_dir, outputs, monitor_ms=200))
        client = env.execute_async(JOB_NAMES[job])
        try:
            write_base64_lines(model_dir / "a.b64", [model_message("linear", "A", T0)])
            write_base64_lines(data_dir / "part1.b64", wine_records(features[:RECORDS], t0=T0 + 1))
            _wait(lambda out_dir=outputs: len(read_json_lines(out_dir, "results")) == RECORDS)
            savepoint = Path(stop_with_savepoint(client, str(work / "savepoints")).removeprefix("file:"))
        except BaseException:
            client.cancel()
            raise
        target = out / job
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(savepoint, target)
        events = read_json_lines(outputs, "model-events")
        (target / "model-events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
        print(f"{job}: {savepoint} -> {target} ({len(events)} model events)")


def _wait(condition, timeout: float = 120.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("the job did not score the records in time")
        time.sleep(0.2)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve())
