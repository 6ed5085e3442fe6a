"""Running a serving job over bounded inputs in a local MiniCluster, and reading what it wrote.

One job runs at a time (two shared cores).
"""

from __future__ import annotations

from pathlib import Path

from flink_jobs.environment import create_environment
from flink_jobs.io.files import CollectionIO, read_json_lines
from flink_jobs.jobs import build_job
from serving.settings import JOB_NAMES, JobSettings, ServingOptions
from serving.testing import wine_shaped_schema


class Outputs:
    """The four JSON-lines outputs of a finished job."""

    def __init__(self, out_dir: Path) -> None:
        self.results = read_json_lines(out_dir, "results")
        self.stats = read_json_lines(out_dir, "stats")
        self.dead_letters = read_json_lines(out_dir, "dead-letters")
        self.model_events = read_json_lines(out_dir, "model-events")


def run_bounded(
    tmp_path: Path,
    job: str,
    parallelism: int,
    data: list[bytes],
    models: list[bytes],
    *,
    wine_shaped: tuple[str, ...] = (),
    **options,
) -> Outputs:
    """Run a serving job over bounded inputs to the end; return its outputs.

    ``wine_shaped``: data types besides wine whose records are WineRecords (their schemas are known at start).
    """
    schemas = tuple(wine_shaped_schema(data_type).avsc for data_type in wine_shaped)
    settings = JobSettings(
        job=job,
        parallelism=parallelism,
        checkpoint_interval_ms=500,
        options=ServingOptions(startup_schemas=schemas, **options),
    )
    env = create_environment(settings)
    build_job(env, settings, CollectionIO(data, models, tmp_path))
    env.execute(JOB_NAMES[job])
    return Outputs(tmp_path)
