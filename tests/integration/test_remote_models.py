"""Remote models in a running job: a real MLServer serves a data type, swapped in and out of embedded models.

The job scores diabetes records (JSON, with Kafka's coordinates as ids) with
an embedded ONNX model, then with the same data type's model on MLServer
(format ``oip``), then with an embedded one again. The oracles are the
training libraries' own ``predict``: scikit-learn here for the embedded
model, scikit-learn in MLServer's venv for the remote one. Results are read
``read_committed`` and counted by record id.
"""

from __future__ import annotations

import collections
import json
import time

import numpy as np
import pytest

from flink_jobs.control import latest_checkpoint
from serving.clock import now_ms
from serving.formats import descriptor_from_path
from serving.formats.remote.oip import remote_descriptor
from serving.kafka.clients import create_topics
from serving.ops.broker import free_port
from serving.ops.jobprocess import LocalJob
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.pb.serving_result_pb2 import ServingResult
from tests.support.kafka import read_all, send, send_tracked, wait_for_event
from tests.support.mlserver import model_repository, running_mlserver

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]


def _embedded(tmp_path, rows: np.ndarray, target: np.ndarray, names: list[str], version: str):
    """An ONNX linear regression on diabetes, and scikit-learn's own predictions for ``rows``."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.linear_model import LinearRegression

    oracle = LinearRegression().fit(rows, target)
    exported = convert_sklearn(oracle, initial_types=[("input", DoubleTensorType([None, len(names)]))], target_opset=17)
    path = tmp_path / f"{version}.onnx"
    path.write_bytes(exported.SerializeToString())
    descriptor = descriptor_from_path(
        path, "onnx", data_type="diabetes", name="diabetes-lr", version=version,
        metadata={"feature_names": ",".join(names)},
    )  # fmt: skip
    return descriptor, oracle.predict(rows)


def _publish(settings, descriptor) -> None:
    descriptor.created_at = now_ms()
    send(settings, settings.topics.models, [descriptor.SerializeToString()], key=b"diabetes")
    assert wait_for_event(settings, descriptor.version).kind == ModelEvent.ACCEPTED


def test_a_swap_to_a_remote_model_and_back_loses_and_duplicates_nothing(kafka_settings, tmp_path, monkeypatch):
    """Embedded, remote (its server killed and restarted mid-stream: asked again), embedded again."""
    from sklearn.datasets import load_diabetes

    monkeypatch.setenv("MODELSERVING_REMOTE_BREAKER_OPEN_MS", "500")  # the job's workers inherit it

    suffix = kafka_settings.group_id.rsplit("-", 1)[-1]
    settings = kafka_settings.model_copy(update={"data_topic_prefix": f"data-{suffix}."})
    topic = settings.data_topic_prefix + "diabetes"
    create_topics(settings, {"diabetes": topic}, 2)
    expected = model_repository(tmp_path / "mlserver")["diabetes"]
    names = expected["feature_names"]
    rows = np.asarray(expected["rows"])
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    fields = [{"name": n, "type": "double"} for n in names]
    (schemas / "diabetes.avsc").write_text(json.dumps({"type": "record", "name": "diabetes", "fields": fields}))
    first, first_predict = _embedded(tmp_path, rows, load_diabetes().target, names, "lr-1")
    again, _ = _embedded(tmp_path, rows, load_diabetes().target, names, "lr-2")
    thirds = np.array_split(np.arange(len(rows)), 3)

    def send_rows(indices) -> dict[str, int]:
        messages = [(json.dumps(dict(zip(names, rows[i].tolist()))).encode(), now_ms()) for i in indices]
        return dict(zip(send_tracked(settings, topic, messages), indices))

    with running_mlserver(tmp_path / "mlserver") as server:
        remote = remote_descriptor(
            server.url, data_type="diabetes", name="diabetes-gbr", version="remote-1",
            metadata={"model_name": "diabetes", "feature_names": ",".join(names)},
        )  # fmt: skip
        job = LocalJob(
            settings, "keyed", tmp_path / "job", parallelism=2, rest_port=free_port(),
            job_args=("--schemas", str(schemas), "--stats-every-records", "10"),
        )  # fmt: skip
        try:
            _publish(settings, first)
            sent = {"lr-1": send_rows(thirds[0])}
            _publish(settings, remote)
            halves = np.array_split(thirds[1], 2)
            sent["remote-1"] = send_rows(halves[0])
            read_all(settings, settings.topics.results, len(thirds[0]) + len(halves[0]), timeout=120)
            server.kill()
            sent["remote-1"].update(send_rows(halves[1]))  # scored while the server is down: asked again
            time.sleep(2)
            server.start()
            _publish(settings, again)
            sent["lr-2"] = send_rows(thirds[2])
            read_all(settings, settings.topics.results, len(rows), timeout=180)
            got = [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, None, 10)]
            stats = [ModelStats.FromString(v) for v in read_all(settings, settings.topics.stats, None, 10)]
            letters = [DeadLetter.FromString(v) for v in read_all(settings, settings.topics.dead_letters, None, 5)]
            restarts = job.restarts()
        finally:
            job.stop()

    counts = collections.Counter(r.record_id for r in got)
    every = {i for ids in sent.values() for i in ids}
    assert set(counts) == every and max(counts.values()) == 1, "lost or duplicated records"
    assert letters == [] and restarts == 0
    # The remote model was scored by the async operator, which reports as instances of its own.
    latest: dict[str, int] = {}
    for s in stats:
        if s.version == "remote-1" and s.instance.startswith("remote-"):
            latest[s.instance] = max(latest.get(s.instance, 0), s.usage)
    assert sum(latest.values()) >= len(sent["remote-1"]) - 20  # each instance reports every 10 records
    by_id = {r.record_id: r for r in got}
    for version, ids in sent.items():
        for record_id, row in ids.items():
            result = by_id[record_id]
            assert result.model_version == version, record_id
            if version == "remote-1":  # scored by MLServer, which reported its own version
                assert result.served_version == "v1"
                assert result.score == pytest.approx(expected["predict"][row], abs=1e-9)
            else:
                assert result.served_version == ""
                assert result.score == pytest.approx(first_predict[row], abs=1e-6)


def test_remote_batches_in_flight_at_a_crash_are_asked_again_after_the_restore(kafka_settings, tmp_path):
    """iris-slow answers each batch after 1 s: the job is killed with batches in the async operator."""
    suffix = kafka_settings.group_id.rsplit("-", 1)[-1]
    settings = kafka_settings.model_copy(update={"data_topic_prefix": f"data-{suffix}."})
    topic = settings.data_topic_prefix + "iris"
    create_topics(settings, {"iris": topic}, 2)
    expected = model_repository(tmp_path / "mlserver")["iris"]
    fields, rows = expected["schema_order"], np.asarray(expected["rows"])
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    avsc = {"type": "record", "name": "iris", "fields": [{"name": n, "type": "double"} for n in fields]}
    (schemas / "iris.avsc").write_text(json.dumps(avsc))
    groups = np.array_split(np.arange(len(rows)), 15)
    sent: dict[str, int] = {}

    def send_group(indices) -> None:
        messages = [(json.dumps(dict(zip(fields, rows[i].tolist()))).encode(), now_ms()) for i in indices]
        sent.update(zip(send_tracked(settings, topic, messages), indices))

    with running_mlserver(tmp_path / "mlserver") as server:
        slow = remote_descriptor(
            server.url, data_type="iris", name="iris-slow", version="slow-1",
            metadata={"model_name": "iris-slow", "output_name": "predict_proba", "timeout_ms": "5000",
                      "feature_names": ",".join(expected["feature_names"])},
        )  # fmt: skip
        work, args = tmp_path / "job", ("--schemas", str(schemas))
        first = LocalJob(settings, "keyed", work, parallelism=2, rest_port=free_port(), name="job1", job_args=args)
        try:
            _publish(settings, slow)
            for group in groups[:8]:
                send_group(group)
                time.sleep(0.3)
            deadline = time.monotonic() + 120
            while not latest_checkpoint(first.checkpoint_dir) and time.monotonic() < deadline:
                time.sleep(0.2)
            send_group(groups[8])
            time.sleep(0.5)  # the flush has handed the batch over; its answer takes a second
        finally:
            first.kill()
        restore = latest_checkpoint(first.checkpoint_dir)
        assert restore, "no checkpoint completed before the crash"
        for group in groups[9:]:
            send_group(group)
        again = LocalJob(settings, "keyed", work, parallelism=2, restore=restore, rest_port=free_port(),
                         name="job2", job_args=args)  # fmt: skip
        try:
            read_all(settings, settings.topics.results, len(rows), timeout=240)
            time.sleep(3)  # a duplicate would arrive after the last expected result
            got = [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, None, 10)]
            restarts = again.restarts()
        finally:
            again.stop()

    counts = collections.Counter(r.record_id for r in got)
    assert set(counts) == set(sent) and max(counts.values()) == 1, "lost or duplicated records"
    assert restarts == 0
    for result in got:
        assert (result.model_version, result.served_version) == ("slow-1", "v1")
        want = expected["predict_proba"][sent[result.record_id]]
        np.testing.assert_allclose(list(result.probabilities), want, rtol=1e-12)
