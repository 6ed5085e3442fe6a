"""An ensemble's per-member counters in the serving stats: wins, ok, late and errors per record, kept in state.

Expected values are counted by hand from the scores handed over (synthetic
ones), or from the ensemble document (a real ensemble of two ONNX members
trained here, in ``declared`` mode: a member declared slower than the budget
is late up front, so the outcome does not depend on this machine's speed).
"""

from __future__ import annotations

import numpy as np
import pytest

from serving.core.member_stats import MemberServingStats, tally
from serving.core.model import BatchScores, ModelDescriptor
from serving.core.scoring import score_due
from serving.core.stats import ModelServingStats, StatsTracker
from serving.formats import load_model
from serving.formats.ensemble.members import Outcome
from serving.formats.ensemble.model import EnsembleScores
from serving.observability.messages import MalformedMessage, parse_stats
from serving.pb.model_stats_pb2 import MemberStats, ModelStats
from serving.records.wire import DataRecord
from tests.support.ensembles import IRIS_FIELDS, document, embedded, ensemble_descriptor, iris
from tests.support.mlserver import numeric_schema

SCHEMA = numeric_schema("iris", IRIS_FIELDS)


class _Model:
    """What the tracker reads of a model: its descriptor, name, version and data type."""

    descriptor = ModelDescriptor(name="iris-ensemble", version="e1", data_type="iris", created_at=1_000)
    name, version, data_type = "iris-ensemble", "e1", "iris"


def _scores(decided_by: tuple[str, ...], statuses: tuple[str, str, str]) -> EnsembleScores:
    smart, fast, vote = statuses
    outcomes = (Outcome("smart", "2", 1, smart, 900), Outcome("fast", "1", 2, fast, 50), Outcome("vote", "1", 3, vote))
    return EnsembleScores(np.zeros(len(decided_by)), None, (), 1_000, decided_by=decided_by, outcomes=outcomes)


#: Batch 1 (4 records): smart decides 1, fast 3; vote fails. Batch 2 (2 records): smart is late, fast decides both.
BATCH_1 = _scores(("fast:1", "smart:2", "fast:1", "fast:1"), ("ok", "ok", "error"))
BATCH_2 = _scores(("fast:1", "fast:1"), ("late", "ok", "ok"))
#: Counted by hand: (name, version, wins, ok, late, errors).
AFTER_BOTH = [("smart", "2", 1, 4, 2, 0), ("fast", "1", 5, 6, 0, 0), ("vote", "1", 0, 2, 0, 4)]


def _rows(members) -> list[tuple]:
    return [(m.name, m.version, m.wins, m.ok, m.late, m.errors) for m in members]


def _tracker(saved: bytes | None = None) -> StatsTracker:
    return StatsTracker("key:iris", every_records=0, every_seconds=0, saved=saved)


def test_a_batch_tallies_a_win_per_record_for_its_decider_and_each_member_status_per_record():
    assert _rows(tally(BATCH_1, 4)) == [
        ("smart", "2", 1, 4, 0, 0),
        ("fast", "1", 3, 4, 0, 0),
        ("vote", "1", 0, 0, 0, 4),
    ]
    assert _rows(tally(BATCH_2, 2)) == [
        ("smart", "2", 0, 0, 2, 0),
        ("fast", "1", 2, 2, 0, 0),
        ("vote", "1", 0, 2, 0, 0),
    ]


def test_other_models_scores_tally_nothing_and_their_stats_have_no_members():
    plain = BatchScores(np.zeros(3), None, (), 300)
    assert tally(plain, 3) == ()
    tracker = _tracker()
    tracker.scored(_Model(), 3, 300)
    [message] = tracker.emit_all()
    assert message.usage == 3 and len(message.members) == 0


def test_the_tracker_sums_batches_emits_the_counters_and_keeps_them_in_its_state_bytes():
    tracker = _tracker()
    tracker.scored(_Model(), 4, 1_000, tally(BATCH_1, 4))
    tracker.scored(_Model(), 2, 1_000, tally(BATCH_2, 2))
    [message] = tracker.emit_all()
    assert message.usage == 6
    assert _rows(message.members) == AFTER_BOTH
    # Restored from its state bytes (as after a Flink restore), then one more batch: batch 1 again.
    restored = _tracker(tracker.saved())
    [stats] = restored.stats.values()
    assert _rows(stats.members) == AFTER_BOTH
    restored.scored(_Model(), 4, 1_000, tally(BATCH_1, 4))
    [message] = restored.emit_all()
    assert _rows(message.members) == [("smart", "2", 2, 8, 2, 0), ("fast", "1", 8, 10, 0, 0), ("vote", "1", 0, 2, 0, 8)]
    assert parse_stats(message.SerializeToString()).members == message.members


def test_merging_two_instances_sums_each_member():
    one = ModelServingStats("iris-ensemble", "e1", "iris", usage=4, members=[MemberServingStats("a", "1", 3, 4, 0, 0)])
    two = ModelServingStats(
        "iris-ensemble", "e1", "iris", usage=2,
        members=[MemberServingStats("b", "1", 0, 1, 1, 0), MemberServingStats("a", "1", 2, 2, 0, 0)],
    )  # fmt: skip
    assert _rows(one.merge(two).members) == [("a", "1", 5, 6, 0, 0), ("b", "1", 0, 1, 1, 0)]
    assert _rows(one.members) == [("a", "1", 3, 4, 0, 0)]  # merge makes new objects


@pytest.mark.parametrize(
    "member, message",
    [(MemberStats(name="a", version="1", late=-1), "negative"), (MemberStats(version="1", wins=1), "unnamed")],
)
def test_a_stats_message_with_a_bad_member_is_malformed(member, message):
    stats = ModelStats(name="e", version="1", data_type="iris", usage=1, members=[member])
    with pytest.raises(MalformedMessage, match=message):
        parse_stats(stats.SerializeToString())


@pytest.fixture(scope="module")
def ensemble():
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier

    smart = embedded("smart", LogisticRegression(max_iter=1000))
    fast = embedded("fast", DecisionTreeClassifier(max_depth=1, random_state=0))
    # Declared mode, a 100 ms budget: smart declares 500 ms, so it is late for every record; fast decides.
    body = document(
        [smart.entry(1, expected_latency_ms="500"), fast.entry(2, expected_latency_ms="1")],
        mode="declared",
        budget_ms=100,
    )
    model = load_model(ensemble_descriptor(body), columns=SCHEMA.columns)
    yield model
    model.close()


def test_a_real_ensemble_scored_in_batches_counts_per_member_through_scored_batches(ensemble):
    rows, _ = iris()
    records = [DataRecord(f"r{i}", "iris", 10_000 + i, dict(zip(IRIS_FIELDS, rows[i]))) for i in range(5)]
    scored = score_due(records, {"iris": [(0, ensemble)]}, {"iris": SCHEMA}, hold=False, max_held=0, batch_size=3)
    assert not scored.dead_letters and len(scored.results) == 5
    assert [count for _, count, _, _ in scored.batches] == [3, 2]
    tracker = _tracker()
    for model, count, duration, members in scored.batches:
        tracker.scored(model, count, duration, members)
    [message] = tracker.emit_all()
    assert message.name == "iris-ensemble" and message.usage == 5
    assert _rows(message.members) == [("smart", "1", 0, 0, 5, 0), ("fast", "1", 5, 5, 0, 0)]
