"""ModelServingStats: recording, merging and the protobuf form."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.core.stats import ModelServingStats


def fresh(**kw) -> ModelServingStats:
    return ModelServingStats(name="m", version="1", data_type="wine", model_type="PMML", since=10, **kw)


def test_record_tracks_usage_min_max_total():
    stats = fresh()
    stats.record(300)
    stats.record(100)
    stats.record(1000, count=4)  # a batch: 250 ns per record
    assert stats.usage == 6
    assert stats.total_duration_ns == 1400
    assert (stats.min_duration_ns, stats.max_duration_ns) == (100, 300)
    assert stats.min_duration_ns <= stats.mean_duration_ns <= stats.max_duration_ns


durations = st.lists(st.integers(min_value=0, max_value=10**9), min_size=0, max_size=30)


@given(durations, durations)
def test_merge_equals_recording_everything_in_one(a, b):
    left, right, whole = fresh(), fresh(), fresh()
    for d in a:
        left.record(d)
        whole.record(d)
    for d in b:
        right.record(d)
        whole.record(d)
    merged = left.merge(right)
    assert (merged.usage, merged.total_duration_ns) == (whole.usage, whole.total_duration_ns)
    assert (merged.min_duration_ns, merged.max_duration_ns) == (whole.min_duration_ns, whole.max_duration_ns)


def test_merge_refuses_other_model():
    with pytest.raises(ValueError, match="cannot merge"):
        fresh().merge(ModelServingStats(name="m", version="2", data_type="wine"))


def test_proto_round_trip():
    stats = fresh(description="d")
    stats.record(42, count=2)
    assert ModelServingStats.from_proto(stats.to_proto()) == stats
