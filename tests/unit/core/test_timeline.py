"""The event-time rule: the latest model with created_at <= record ts scores the record."""

from __future__ import annotations

from serving.core.timeline import assign
from serving.pb.wine_record_pb2 import WineRecord


def recs(*ts):
    return [WineRecord(id=f"r{t}", ts=t, data_type="wine") for t in ts]


def ids(records):
    return [r.id for r in records]


def test_records_go_to_the_model_current_at_their_time():
    a, b = object(), object()
    out = assign(recs(5, 10, 15, 20, 25), [(0, a), (15, b)], hold=True)
    assert [(m, ids(rs)) for m, rs in out.runs] == [(a, ["r5", "r10"]), (b, ["r15", "r20", "r25"])]
    assert out.unserved == []


def test_arrival_order_does_not_matter():
    a, b = object(), object()
    shuffled = assign(recs(25, 5, 20, 10, 15), [(0, a), (15, b)], hold=True)
    assert [(m, ids(rs)) for m, rs in shuffled.runs] == [(a, ["r5", "r10"]), (b, ["r15", "r20", "r25"])]


def test_early_records_hold_for_the_first_model_or_are_unserved_in_drop_mode():
    a = object()
    assert [(m, ids(rs)) for m, rs in assign(recs(1, 2, 50), [(10, a)], hold=True).runs] == [(a, ["r1", "r2", "r50"])]
    dropped = assign(recs(1, 2, 50), [(10, a)], hold=False)
    assert ids(dropped.unserved) == ["r1", "r2"] and [ids(rs) for _, rs in dropped.runs] == [["r50"]]


def test_no_model_at_all_leaves_everything_unserved():
    assert ids(assign(recs(1, 2), [], hold=True).unserved) == ["r1", "r2"]
