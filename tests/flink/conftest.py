"""Helpers for jobs in a local MiniCluster. One job runs at a time (two shared cores)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from flink_jobs.environment import create_environment
from flink_jobs.io import CollectionIO, read_json_lines
from flink_jobs.jobs import build_job
from serving.core.model import ModelType
from serving.formats import descriptor_from_path
from serving.records.wine import encode_record
from serving.settings import JOB_NAMES, JobSettings, ServingOptions
from tests.conftest import PMML_FOREST, PMML_LINEAR, TF_GRAPH

pytestmark = pytest.mark.flink

#: Event time of the first record; record i of a stream has ts T0 + i.
T0 = 1_700_000_000_000


def records(features, data_type: str = "wine", prefix: str = "", t0: int = T0) -> list[bytes]:
    """WineRecord bytes for feature rows; ids are ``prefix + row number``, ts ``t0 + row``."""
    return [encode_record(f"{prefix}{i}", row, ts=t0 + i, data_type=data_type) for i, row in enumerate(features)]


def model(kind: str, version: str, created_at: int, data_type: str = "wine") -> bytes:
    """A reference model as a published ModelDescriptor."""
    path, model_type = {
        "linear": (PMML_LINEAR, ModelType.PMML),
        "forest": (PMML_FOREST, ModelType.PMML),
        "tf": (TF_GRAPH, ModelType.TENSORFLOW),
    }[kind]
    descriptor = descriptor_from_path(path, model_type, version=version, data_type=data_type, name=kind)
    descriptor.created_at = created_at
    return descriptor.SerializeToString()


def corrupt_model(version: str, created_at: int) -> bytes:
    """A well-formed descriptor whose PMML artifact is cut in half: it must fail to load."""
    descriptor = descriptor_from_path(PMML_LINEAR, ModelType.PMML, version=version, name="corrupt")
    descriptor.data = descriptor.data[: len(descriptor.data) // 2]
    descriptor.sha256 = ""
    descriptor.created_at = created_at
    return descriptor.SerializeToString()


class Outputs:
    """The four JSON-lines outputs of a finished job."""

    def __init__(self, out_dir: Path) -> None:
        self.results = read_json_lines(out_dir, "results")
        self.stats = read_json_lines(out_dir, "stats")
        self.dead_letters = read_json_lines(out_dir, "dead-letters")
        self.model_events = read_json_lines(out_dir, "model-events")


def run_bounded(
    tmp_path: Path, job: str, parallelism: int, data: list[bytes], models: list[bytes], **options
) -> Outputs:
    """Run a serving job over bounded inputs to the end; return its outputs."""
    settings = JobSettings(
        job=job, parallelism=parallelism, checkpoint_interval_ms=500, options=ServingOptions(**options)
    )
    env = create_environment(settings)
    build_job(env, settings, CollectionIO(data, models, tmp_path))
    env.execute(JOB_NAMES[job])
    return Outputs(tmp_path)


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
