"""The audit trail on hand-made results and events: every expected span, signer and line is written out by hand.

The history of data type wine (ts in epoch ms):

* 1000 v1 accepted as champion (signed by key k1);
* 1500 a schema event (not about models), 2000 v2 accepted and 2001 set canary, 2500 its weight set;
* 3000 v2 promoted (v1 retired at the same ms), 3500 iris's own v1 accepted;
* 4000 rolled back to v1; 5000 v3 accepted while pinned and 5001 staged; 6000 v3 promoted.
"""

from __future__ import annotations

import pytest

from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.rollout.audit import AuditAnswer, EventRef, RecordNotScored, Span, audit

E = ModelEvent


def ev(kind, version, ts, role="", data_type="wine", sha="", signed_by="", subject="model", reason=""):
    return ModelEvent(
        kind=kind, version=version, ts=ts, role=role, data_type=data_type, sha256=sha, signed_by=signed_by,
        subject=subject, reason=reason,
    )  # fmt: skip


EVENTS = [
    ev(E.ACCEPTED, "v1", 1000, sha="a1", signed_by="k1"),
    ev(E.ACCEPTED, "3", 1500, subject="schema"),
    ev(E.ACCEPTED, "v2", 2000, sha="b2"),
    ev(E.ROLE_SET, "v2", 2001, role="canary", sha="b2", reason="v2 is canary"),
    ev(E.WEIGHT_SET, "v2", 2500, role="canary", sha="b2"),
    ev(E.PROMOTED, "v2", 3000, role="champion", sha="b2", reason="looks good"),
    ev(E.RETIRED, "v1", 3000, sha="a1", signed_by="k1"),
    ev(E.ACCEPTED, "v1", 3500, data_type="iris", sha="c1"),
    ev(E.ROLLED_BACK, "v1", 4000, role="champion", sha="a1", signed_by="k1", reason="bad canary"),
    ev(E.ACCEPTED, "v3", 5000, sha="d3"),
    ev(E.STAGED, "v3", 5001, sha="d3"),
    ev(E.PROMOTED, "v3", 6000, role="champion", sha="d3"),
]


def res(record_id, version, record_ts, role="", sha="", data_type="wine", **kw):
    return ServingResult(
        record_id=record_id, model_name="rf", model_version=version, record_ts=record_ts, role=role,
        model_sha256=sha, data_type=data_type, **kw,
    )  # fmt: skip


def ref(kind, ts, version, reason=""):
    return EventRef(kind, ts, version, reason)


def only(answer: AuditAnswer):
    assert len(answer.scored) == 1
    return answer.scored[0]


def test_champion_before_a_promotion_is_retired_by_it_and_its_rollback_span_is_listed():
    results = [res("r0", "v1", 1200, sha="a1"), res("r1", "v1", 1500, sha="a1", score=5.0)]
    got = only(audit("r1", results, EVENTS))
    assert got.role == "champion"  # no role on the result: from before roles
    assert got.span == Span(ref("ACCEPTED", 1000, "v1"), ref("PROMOTED", 3000, "v2", "looks good"))
    # Rolled back to at 4000, replaced by v3's promotion at 6000 (not by v3's staged acceptance at 5000).
    assert got.other_spans == (Span(ref("ROLLED_BACK", 4000, "v1", "bad canary"), ref("PROMOTED", 6000, "v3")),)
    assert got.signed_by == "k1"


def test_a_canary_result_spans_from_its_role_set_to_its_own_promotion():
    got = only(audit("r2", [res("r2", "v2", 2200, role="canary", sha="b2")], EVENTS))
    assert got.role == "canary"
    assert got.span == Span(ref("ROLE_SET", 2001, "v2", "v2 is canary"), ref("PROMOTED", 3000, "v2", "looks good"))
    assert got.other_spans == ()
    assert got.signed_by == ""  # its events know the artifact and name no signer: unsigned


def test_a_promoted_champion_is_retired_by_the_rollback():
    got = only(audit("r3", [res("r3", "v2", 3200, role="champion", sha="b2")], EVENTS))
    assert got.span == Span(ref("PROMOTED", 3000, "v2", "looks good"), ref("ROLLED_BACK", 4000, "v1", "bad canary"))


def test_the_span_holding_the_record_ts_is_chosen_and_another_data_types_events_do_not_count():
    got = only(audit("r4", [res("r4", "v1", 4100, sha="a1")], EVENTS))
    assert got.span == Span(ref("ROLLED_BACK", 4000, "v1", "bad canary"), ref("PROMOTED", 6000, "v3"))
    assert got.other_spans == (Span(ref("ACCEPTED", 1000, "v1"), ref("PROMOTED", 3000, "v2", "looks good")),)


def test_a_version_still_serving_has_no_retirement():
    got = only(audit("r5", [res("r5", "v3", 6100, sha="d3")], EVENTS))
    assert got.span == Span(ref("PROMOTED", 6000, "v3"), None)
    assert "  retired:  no, it still serves" in got.lines()


def test_an_artifact_the_events_do_not_know_has_no_deployment_and_no_signer():
    got = only(audit("r6", [res("r6", "v1", 1500, sha="ff")], EVENTS))
    assert got.span is None and got.other_spans == () and got.signed_by is None
    assert "  deployed: no event shows v1 as champion" in got.lines()
    assert "  signed by: unknown (no event of this version)" in got.lines()


def test_every_result_of_a_record_scored_twice_is_reported():
    results = [res("dup", "v1", 1500, sha="a1"), res("other", "v2", 2200), res("dup", "v2", 3200, role="champion")]
    answer = audit("dup", results, EVENTS)
    assert [s.result.model_version for s in answer.scored] == ["v1", "v2"]
    assert answer.lines()[0] == "warning: record 'dup' has 2 results (expected one)"


def test_a_record_never_scored_is_a_one_line_typed_error():
    with pytest.raises(
        RecordNotScored, match=r"^record 'nope' was never scored: none of the 2 results read carries it$"
    ):
        audit("nope", [res("a", "v1", 1), res("b", "v1", 2)], EVENTS)


def test_the_answer_as_lines_and_as_json():
    result = res("r1", "v1", 1500, sha="a1", score=5.0, source_topic="wine-data", source_partition=1, source_offset=42)
    answer = audit("r1", [result], EVENTS)
    assert answer.lines() == [
        "wine record 'r1' (ts 1970-01-01T00:00:01.500Z) was scored by rf version v1 as champion: score 5",
        "  artifact sha256 a1",
        "  read from wine-data partition 1 offset 42",
        "  deployed: 1970-01-01T00:00:01.000Z (ACCEPTED of v1)",
        "  retired:  1970-01-01T00:00:03.000Z (PROMOTED of v2: looks good)",
        "  also champion from 1970-01-01T00:00:04.000Z (ROLLED_BACK of v1: bad canary) until "
        "1970-01-01T00:00:06.000Z (PROMOTED of v3)",
        "  signed by: k1",
    ]
    assert answer.as_dict() == {
        "record_id": "r1",
        "results": [
            {
                "record_id": "r1",
                "data_type": "wine",
                "model_name": "rf",
                "model_version": "v1",
                "model_sha256": "a1",
                "role": "champion",
                "record_ts": 1500,
                "source": {"topic": "wine-data", "partition": 1, "offset": 42},
                "score": 5.0,
                "error": "",
                "deployed": {"kind": "ACCEPTED", "ts": 1000, "version": "v1", "reason": ""},
                "retired": {"kind": "PROMOTED", "ts": 3000, "version": "v2", "reason": "looks good"},
                "other_spans": [
                    {
                        "deployed": {"kind": "ROLLED_BACK", "ts": 4000, "version": "v1", "reason": "bad canary"},
                        "retired": {"kind": "PROMOTED", "ts": 6000, "version": "v3", "reason": ""},
                    }
                ],
                "signed_by": "k1",
            }
        ],
    }


def test_a_model_accepted_as_shadow_is_not_taken_for_the_champion():
    events = [
        ev(E.ACCEPTED, "v1", 100),
        ev(E.ACCEPTED, "s1", 200),
        ev(E.ROLE_SET, "s1", 201, role="shadow"),
        ev(E.ACCEPTED, "v2", 300, role="champion"),
    ]
    got = only(audit("x", [res("x", "v1", 250)], events))
    assert got.span == Span(ref("ACCEPTED", 100, "v1"), ref("ACCEPTED", 300, "v2"))


def test_the_jobs_own_sequence_accepted_with_its_role_then_the_lineup_echo():
    # As flink_jobs reports it: ACCEPTED carries the requested role; the lineup's ROLE_SET / STAGED follow.
    events = [
        ev(E.ACCEPTED, "v1", 100, role="champion"),
        ev(E.ACCEPTED, "c1", 200, role="canary"),
        ev(E.ROLE_SET, "c1", 200, role="canary"),
        ev(E.PINNED, "", 300),
        ev(E.ACCEPTED, "v2", 400, role="champion"),
        ev(E.STAGED, "v2", 400),
        ev(E.RETIRED, "c1", 500),
    ]
    canary = only(audit("c", [res("c", "c1", 250, role="canary")], events))
    assert canary.span == Span(ref("ACCEPTED", 200, "c1"), ref("RETIRED", 500, "c1"))
    assert canary.other_spans == ()
    champion = only(audit("x", [res("x", "v1", 450)], events))
    assert champion.span == Span(ref("ACCEPTED", 100, "v1"), None)  # v2 was only staged
