"""Shadows, canaries, promotion, rollback and pins on a real broker, both job shapes at parallelism 2.

Expected scores come from JPMML-Evaluator (the reference PMML implementation),
the canary's ids from blake2b computed here, never from the code under test.
"""

from __future__ import annotations

import collections
import hashlib
import json
import re
import subprocess
import sys
import time

import numpy as np
import pytest

from flink_jobs.control import latest_checkpoint
from serving.clock import now_ms
from serving.ops.jobprocess import LocalJob, kafka_env
from serving.pb.comparison_pb2 import Comparison
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_descriptor_pb2 import ModelDescriptor
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.wine import encode_record
from serving.rollout.control import control_message
from serving.testing import model_message
from tests.support.kafka import EventLog, read_all, send
from tests.support.reference import PMML_FOREST, PMML_LINEAR, PMML_TREE, pmml_rows

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]

E = ModelEvent


def _as(role: str, message: bytes, weight_bp: int = 0) -> bytes:
    descriptor = ModelDescriptor.FromString(message)
    descriptor.metadata["role"] = role
    if weight_bp:
        descriptor.metadata["weight_bp"] = str(weight_bp)
    return descriptor.SerializeToString()


@pytest.fixture
def events(kafka_settings):
    log = EventLog(kafka_settings)
    yield log
    log.close()


def _control(settings, action: str, version: str = "") -> None:
    message = control_message("wine", action, version, issued_at=now_ms(), issued_by="test")
    send(settings, settings.topics.control, [message.SerializeToString()], key=b"wine")


class _Records:
    """Sends wine rows as records named ``prefix + i`` and reads their committed results."""

    def __init__(self, settings, features: np.ndarray) -> None:
        self.settings, self.features, self.sent = settings, features, 0

    def send(self, prefix: str, count: int, first_row: int = 0) -> dict[str, int]:
        rows = {f"{prefix}{i}": (first_row + i) % len(self.features) for i in range(count)}
        send(self.settings, self.settings.topics.data, [encode_record(r, self.features[i]) for r, i in rows.items()])
        self.sent += count
        return rows

    def results(self, timeout: float = 180.0) -> dict[str, list[ServingResult]]:
        raw = read_all(self.settings, self.settings.topics.results, self.sent, timeout)
        by_id: dict[str, list[ServingResult]] = collections.defaultdict(list)
        for value in raw:
            result = ServingResult.FromString(value)
            by_id[result.record_id].append(result)
        return by_id


def _served(by_id, prefix: str) -> collections.Counter:
    return collections.Counter(r[0].model_version for i, r in by_id.items() if re.fullmatch(rf"{prefix}\d+", i))


def test_keyed_shadow_promotion_rollback_and_pin_survive_a_restore(kafka_settings, tmp_path, wine_data, jpmml, events):
    settings, features = kafka_settings, wine_data.features
    args = ("--selection", "arrival", "--promotion-min-n", "200", "--auto-promote", "--stats-every-records", "100")
    job = LocalJob(settings, "keyed", tmp_path / "job", parallelism=2, name="job1", job_args=args)
    records = _Records(settings, features)
    t0 = now_ms()
    try:
        send(settings, settings.topics.models, [model_message("linear", "c1", t0)], key=b"wine")
        events.wait("c1", E.ACCEPTED)
        send(settings, settings.topics.models, [_as("shadow", model_message("tree", "s1", t0 + 1))], key=b"wine")
        events.wait("s1", E.ROLE_SET)
        a = records.send("a", 300)
        by_id = records.results()
        # The identical artifact as a second shadow: it agrees on every record, so it is recommended at n = 200.
        send(settings, settings.topics.models, [_as("shadow", model_message("linear", "s2", t0 + 2))], key=b"wine")
        events.wait("s2", E.ROLE_SET)
        records.send("b", 300, first_row=300)
        recommended = events.wait("s2", E.PROMOTE_RECOMMENDED)
        events.wait("s2", E.PROMOTED)  # auto_promote: the job's own PROMOTE, read back from the control topic
        records.send("c", 100)
        records.results()
        _control(settings, "rollback")
        events.wait("c1", E.ROLLED_BACK)
        records.send("d", 100)
        records.results()
        _control(settings, "pin")
        events.wait("", E.PINNED)
        send(settings, settings.topics.models, [model_message("forest", "c3", now_ms())], key=b"wine")
        events.wait("c3", E.STAGED)
        send(settings, settings.topics.models, [model_message("linear", "c0", t0 - 60_000)], key=b"wine")
        downgrade = events.wait("c0", E.REJECTED)
        _control(settings, "rollback", "v9")
        unknown = events.wait("v9", E.CONTROL_REJECTED)
        records.send("e", 100)
        records.results()
        _control(settings, "unpin")
        events.wait("", E.UNPINNED)
        events.wait("c3", E.PROMOTED)
        records.send("f", 100)
        by_id = records.results()
        deadline = time.monotonic() + 60
        while not latest_checkpoint(job.checkpoint_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        job.kill()
    restore = latest_checkpoint(job.checkpoint_dir)
    assert restore, "no checkpoint completed"
    again = LocalJob(settings, "keyed", tmp_path / "job", parallelism=1, restore=restore, name="job2", job_args=args)
    try:
        _control(settings, "rollback")  # the lineup came back from state: the champion before c3 is c1
        events.wait("c1", E.ROLLED_BACK, nth=2)
        records.send("g", 100)
        by_id = records.results()
        time.sleep(3)  # a duplicate would arrive by now
        by_id = records.results(timeout=10)
        comparisons = [Comparison.FromString(v) for v in read_all(settings, settings.topics.comparisons, None, 5)]
        letters = [DeadLetter.FromString(v) for v in read_all(settings, settings.topics.dead_letters, None, 5)]
    finally:
        again.stop()

    assert all(len(results) == 1 for results in by_id.values()), "a record was scored twice"
    assert len(by_id) == records.sent
    assert _served(by_id, "a") == {"c1": 300}
    assert _served(by_id, "c") == {"s2": 100}
    assert _served(by_id, "d") == {"c1": 100}
    assert _served(by_id, "e") == {"c1": 100}  # pinned: c3 staged, c0 refused as a downgrade
    assert _served(by_id, "f") == {"c3": 100}
    assert _served(by_id, "g") == {"c1": 100}
    assert {r[0].role for r in by_id.values()} == {"champion"}

    # Provenance: the artifact's sha256 and where the record was read.
    linear_sha = hashlib.sha256(PMML_LINEAR.read_bytes()).hexdigest()
    assert {by_id[f"a{i}"][0].model_sha256 for i in range(300)} == {linear_sha}
    coordinates = {(r[0].source_topic, r[0].source_partition, r[0].source_offset) for r in by_id.values()}
    assert len(coordinates) == records.sent and {c[0] for c in coordinates} == {settings.topics.data}

    # The shadow's comparisons: every "a" record once, both scores as JPMML-Evaluator gives them.
    shadow = [c for c in comparisons if c.challenger.version == "s1" and c.record_id.startswith("a")]
    assert collections.Counter(c.record_id for c in shadow) == dict.fromkeys(a, 1)
    order = sorted(a, key=lambda r: a[r])
    rows = pmml_rows(jpmml, PMML_LINEAR, features[[a[r] for r in order]])
    linear = dict(zip(order, jpmml.answers(PMML_LINEAR, rows).predicted, strict=True))
    tree_rows = pmml_rows(jpmml, PMML_TREE, features[[a[r] for r in order]])
    tree = dict(zip(order, jpmml.answers(PMML_TREE, tree_rows).predicted, strict=True))
    for c in shadow:
        assert c.champion.version == "c1" and c.challenger_role == "shadow"
        assert c.champion.score == pytest.approx(linear[c.record_id], abs=1e-9)
        assert c.challenger.label == tree[c.record_id]
        assert c.agree == (abs(float(tree[c.record_id]) - linear[c.record_id]) <= 0.5)

    # Promotion fired exactly when the rule held: n = min_n = 200 identical scores (Wilson bound 0.981).
    assert "on 200 of 200 records" in recommended.reason
    events.wait("c1", E.ROLLED_BACK, nth=2)  # read up to the last event this test waited for
    assert sum(1 for e in events.events if e.kind == E.PROMOTE_RECOMMENDED and e.version == "s2") == 1

    assert downgrade.reason.startswith("downgrade") and unknown.reason.startswith("unknown version")
    assert {"downgrade", "unknown version"} <= {d.reason for d in letters}

    # audit, as a user runs it: a record scored before the promotion, and one scored after it.
    before, after = _audit(settings, "a5"), _audit(settings, "c5")
    assert (before["model_version"], before["model_sha256"], before["role"]) == ("c1", linear_sha, "champion")
    assert before["retired"] is not None  # s2 took over from c1 after "a5" was scored
    assert (after["model_version"], after["deployed"]["kind"]) == ("s2", "PROMOTED")
    assert after["deployed"]["ts"] >= before["deployed"]["ts"]


def _audit(settings, record_id: str) -> dict:
    run = subprocess.run(
        [sys.executable, "-m", "serving.cli", "audit", record_id, "--json"],
        env=kafka_env(settings), capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-2000:]
    [scored] = json.loads(run.stdout)["results"]
    return scored


def test_partitioned_canary_takes_its_share_by_id_across_a_restore_and_shadows_compare_every_record(
    kafka_settings, tmp_path, wine_data, jpmml, events
):
    settings, features = kafka_settings, wine_data.features
    job = LocalJob(settings, "partitioned", tmp_path / "job", parallelism=2, job_args=("--selection", "arrival"))
    records = _Records(settings, features)
    t0 = now_ms()
    count = 20_000
    try:
        send(settings, settings.topics.models, [model_message("linear", "c1", t0)], key=b"wine")
        events.wait("c1", E.ACCEPTED)
        send(settings, settings.topics.models, [_as("canary", model_message("tree", "k1", t0 + 1), 2000)], key=b"wine")
        send(settings, settings.topics.models, [_as("shadow", model_message("forest", "s1", t0 + 2))], key=b"wine")
        events.wait("s1", E.ROLE_SET)
        events.wait("k1", E.ROLE_SET)
        sent = records.send("r", count)
        records.results(timeout=300)
        deadline = time.monotonic() + 60
        while not latest_checkpoint(job.checkpoint_dir) and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        job.kill()
    # Restored at parallelism 1: the lineup comes back from broadcast state, and the same ids go to the canary.
    restore = latest_checkpoint(job.checkpoint_dir)
    assert restore, "no checkpoint completed"
    again = LocalJob(settings, "partitioned", tmp_path / "job", parallelism=1, restore=restore, name="job2",
                     job_args=("--selection", "arrival"))  # fmt: skip
    try:
        sent.update(records.send("q", 2_000))
        by_id = records.results(timeout=300)
        time.sleep(3)
        by_id = records.results(timeout=10)
        comparisons = [Comparison.FromString(v) for v in read_all(settings, settings.topics.comparisons, None, 10)]
    finally:
        again.stop()

    assert len(by_id) == len(sent) and all(len(r) == 1 for r in by_id.values())
    bucket = {r: int.from_bytes(hashlib.blake2b(f"wine/k1:{r}".encode(), digest_size=8).digest(), "big") % 10_000
              for r in sent}  # fmt: skip
    expected_canary = {r for r, b in bucket.items() if b < 2000}
    assert 0.19 * count <= sum(1 for r in expected_canary if r.startswith("r")) <= 0.21 * count
    assert {r for r, results in by_id.items() if results[0].model_version == "k1"} == expected_canary
    assert {r[0].role for i, r in by_id.items() if i in expected_canary} == {"canary"}

    pairs = collections.Counter((c.challenger.version, c.record_id) for c in comparisons)
    assert set(pairs.values()) == {1}, "a record was compared twice"
    assert {r for v, r in pairs if v == "s1"} == set(sent)
    assert {r for v, r in pairs if v == "k1"} == expected_canary

    sample = sorted(sent)[:500]
    tree = jpmml.answers(PMML_TREE, pmml_rows(jpmml, PMML_TREE, features[[sent[r] for r in sample]])).predicted
    forest = jpmml.answers(PMML_FOREST, pmml_rows(jpmml, PMML_FOREST, features[[sent[r] for r in sample]])).predicted
    by_pair = {(c.challenger.version, c.record_id): c for c in comparisons}
    linear = jpmml.answers(PMML_LINEAR, pmml_rows(jpmml, PMML_LINEAR, features[[sent[r] for r in sample]])).predicted
    for r, want_tree, want_forest, want_linear in zip(sample, tree, forest, linear, strict=True):
        assert by_pair[("s1", r)].challenger.label == want_forest
        assert by_pair[("s1", r)].champion.score == pytest.approx(want_linear, abs=1e-9)
        if r in expected_canary:
            assert by_pair[("k1", r)].challenger.label == want_tree
