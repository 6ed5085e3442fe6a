"""Ensembles in a running job: speculative execution against a real MLServer, in both Flink jobs, unchanged.

The job scores iris records (JSON, with Kafka's coordinates as ids). First
an ensemble in ``wallclock`` mode whose smart member (MLServer's
``iris-slow``, 1 s per request) misses a 300 ms budget: every result is the
fast embedded member's answer, with the smart member ``late``. Then an
ensemble in ``declared`` mode (a plurality of MLServer's ``iris`` and two
embedded members; ``iris-slow`` excluded by its declared latency), with the
job killed mid-stream and restored from its last checkpoint: nothing is
lost or doubled, and every result is the one the oracles give. Oracles:
scikit-learn's own ``predict`` (MLServer's in its venv, ours for the ONNX
members), and the plurality rule over them. The stats topic counts, per
member, the records it decided (wins) and answered ok, late or with an error,
as the results say (the latest snapshot of each instance, summed).
"""

from __future__ import annotations

import collections
import json
import time

import numpy as np
import pytest

from flink_jobs.control import latest_checkpoint
from serving.clock import now_ms
from serving.kafka.clients import create_topics
from serving.ops.broker import free_port
from serving.ops.jobprocess import LocalJob
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.pb.serving_result_pb2 import ServingResult
from tests.support.ensembles import IRIS_FIELDS, document, embedded, ensemble_descriptor, remote_entry
from tests.support.kafka import read_all, send, send_tracked, wait_for_event
from tests.support.mlserver import model_repository, running_mlserver

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]


def _publish(settings, descriptor) -> None:
    descriptor.created_at = now_ms()
    send(settings, settings.topics.models, [descriptor.SerializeToString()], key=b"iris")
    event = wait_for_event(settings, descriptor.version)
    assert event.kind == ModelEvent.ACCEPTED, event.reason


def _plurality(votes: list[int]) -> tuple[int, int]:
    """(answer, index of its highest-priority voter) by the plurality rule with quorum 2 (else the first member)."""
    counts = collections.Counter(votes)
    best = max(counts.values())
    if best < 2:
        return votes[0], 0
    answer = next(v for v in votes if counts[v] == best)  # ties: the higher priority
    return answer, votes.index(answer)


def _member_counts(settings, name: str, version: str, usage: int, timeout: float = 90.0) -> dict[str, tuple]:
    """Per member of ``name:version``, (wins, ok, late, errors): each instance's latest snapshot, summed.

    Waits until those snapshots count ``usage`` records (stats go out every 10 s by default).
    """
    deadline = time.monotonic() + timeout
    while True:
        latest: dict[str, ModelStats] = {}
        for raw in read_all(settings, settings.topics.stats, None, 5):
            message = ModelStats.FromString(raw)
            if (message.name, message.version) != (name, version):
                continue
            if message.instance not in latest or message.emitted_at >= latest[message.instance].emitted_at:
                latest[message.instance] = message
        if sum(m.usage for m in latest.values()) == usage or time.monotonic() > deadline:
            break
    assert sum(m.usage for m in latest.values()) == usage, f"the stats of {name}:{version} never counted {usage}"
    totals: dict[str, list[int]] = {}
    for message in latest.values():
        for member in message.members:
            total = totals.setdefault(member.name, [0, 0, 0, 0])
            for i, value in enumerate((member.wins, member.ok, member.late, member.errors)):
                total[i] += value
    return {member: tuple(total) for member, total in totals.items()}


def test_speculative_ensembles_late_members_and_a_declared_restore(kafka_settings, tmp_path):
    # The partitioned job (broadcast state); the keyed one serves remote models in test_remote_models.py.
    job = "partitioned"
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    suffix = kafka_settings.group_id.rsplit("-", 1)[-1]
    settings = kafka_settings.model_copy(update={"data_topic_prefix": f"data-{suffix}."})
    topic = settings.data_topic_prefix + "iris"
    create_topics(settings, {"iris": topic}, 2)
    expected = model_repository(tmp_path / "mlserver")["iris"]
    rows = np.asarray(expected["rows"])
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    fields = [{"name": n, "type": "double"} for n in IRIS_FIELDS]
    (schemas / "iris.avsc").write_text(json.dumps({"type": "record", "name": "iris", "fields": fields}))
    stump = embedded("stump", DecisionTreeClassifier(max_depth=1, random_state=0))
    lr = embedded("lr", LogisticRegression(max_iter=1000))
    halves = np.array_split(np.arange(len(rows)), 2)

    def send_rows(indices) -> dict[str, int]:
        messages = [(json.dumps(dict(zip(IRIS_FIELDS, rows[i].tolist()))).encode(), now_ms()) for i in indices]
        return dict(zip(send_tracked(settings, topic, messages), indices))

    with running_mlserver(tmp_path / "mlserver") as server:
        trained = expected["feature_names"]
        hurried = ensemble_descriptor(
            document([remote_entry(server.url, "iris-slow", 1, trained, timeout_ms="3000"), stump.entry(2)],
                     budget_ms=300),
            name="iris-hurried",
        )  # fmt: skip
        hurried.version = "wallclock-1"
        declared = ensemble_descriptor(
            document(
                [remote_entry(server.url, "iris-slow", 1, trained, expected_latency_ms="1000"),
                 remote_entry(server.url, "iris", 2, trained, expected_latency_ms="50"),
                 lr.entry(3, expected_latency_ms="1"), stump.entry(4, expected_latency_ms="1")],
                decider="plurality", mode="declared", budget_ms=200, quorum=2,
            ),
            name="iris-vote",
        )  # fmt: skip
        declared.version = "declared-1"
        work = tmp_path / "job"
        args = ("--schemas", str(schemas), "--stats-every-seconds", "1")  # stats soon after the last records
        first = LocalJob(settings, job, work, parallelism=2, name="job1", job_args=args)
        try:
            _publish(settings, hurried)
            sent = {"wallclock-1": send_rows(halves[0])}
            read_all(settings, settings.topics.results, len(halves[0]), timeout=180)
            _publish(settings, declared)
            second_half = list(halves[1])
            sent["declared-1"] = send_rows(second_half[: len(second_half) // 2])
            deadline = time.monotonic() + 120
            while not latest_checkpoint(first.checkpoint_dir) and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            first.kill()  # a crash, with the declared ensemble in state
        restore = latest_checkpoint(first.checkpoint_dir)
        assert restore, "no checkpoint completed before the crash"
        sent["declared-1"].update(send_rows(second_half[len(second_half) // 2 :]))
        again = LocalJob(settings, job, work, parallelism=2, restore=restore, name="job2",
                         rest_port=free_port(), job_args=args)  # fmt: skip
        try:
            read_all(settings, settings.topics.results, len(rows), timeout=180)
            time.sleep(3)  # a duplicate would arrive after the last expected result
            got = [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, None, 10)]
            hurried_members = _member_counts(settings, "iris-hurried", "wallclock-1", len(sent["wallclock-1"]))
            vote_members = _member_counts(settings, "iris-vote", "declared-1", len(sent["declared-1"]))
            restarts = again.restarts()
        finally:
            again.stop()

    counts = collections.Counter(r.record_id for r in got)
    every = {i for ids in sent.values() for i in ids}
    assert set(counts) == every and max(counts.values()) == 1, "lost or duplicated records"
    assert restarts == 0
    by_id = {r.record_id: r for r in got}
    stump_says = stump.oracle.predict(rows)
    for record_id, row in sent["wallclock-1"].items():
        result = by_id[record_id]
        assert (result.model_name, result.model_version) == ("iris-hurried", "wallclock-1")
        assert result.decided_by == "stump:1"
        assert [(m.name, m.status) for m in result.members] == [("iris-slow", "late"), ("stump", "ok")]
        assert result.score == stump_says[row]
    names = ["iris:1", "lr:1", "stump:1"]
    for record_id, row in sent["declared-1"].items():
        result = by_id[record_id]
        assert result.model_version == "declared-1"
        votes = [expected["predict"][row], int(lr.oracle.predict(rows[row : row + 1])[0]), int(stump_says[row])]
        answer, voter = _plurality(votes)
        assert (result.score, result.decided_by) == (answer, names[voter]), record_id
        statuses = [(m.name, m.status) for m in result.members]
        assert statuses == [("iris-slow", "late"), ("iris", "ok"), ("lr", "ok"), ("stump", "ok")]
    # The stats topic, per member: (wins, ok, late, errors), counted from what was sent and the oracles.
    hurried = len(sent["wallclock-1"])
    assert hurried_members == {"iris-slow": (0, 0, hurried, 0), "stump": (hurried, hurried, 0, 0)}
    voted = len(sent["declared-1"])
    wins = collections.Counter(
        names[_plurality([expected["predict"][row], int(lr.oracle.predict(rows[row : row + 1])[0]),
                          int(stump_says[row])])[1]]
        for row in sent["declared-1"].values()
    )  # fmt: skip
    assert vote_members == {
        "iris-slow": (0, 0, voted, 0),
        "iris": (wins["iris:1"], voted, 0, 0),
        "lr": (wins["lr:1"], voted, 0, 0),
        "stump": (wins["stump:1"], voted, 0, 0),
    }
