"""The oracle's checks C1-C9 on synthetic evidence: each passes on a clean run and fails on its fault.

Every expected value is written out by hand from issue 19's definitions.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from serving.faults.logscan import LogFinding
from serving.faults.oracle import Evidence, FaultTiming, PartitionOffsets, ScoredResult, judge

#: The offline scores the "model" gives: version v1 scores r<n> as n / 10, v2 as n / 10 + 1.
OFFLINE = {("v1", f"r{n}"): n / 10 for n in range(1, 6)} | {("v2", f"r{n}"): n / 10 + 1 for n in range(1, 6)}


def expected(version: str, record_id: str) -> float | None:
    return OFFLINE.get((version, record_id))


def clean() -> Evidence:
    """Five acked records: r1-r3 scored by v1, r4 by v2, r5 dead-lettered; aborted data exists; nothing open."""
    return Evidence(
        acked={"r1", "r2", "r3", "r4", "r5"},
        results=[
            ScoredResult("r1", "v1", 0.1),
            ScoredResult("r2", "v1", 0.2),
            ScoredResult("r3", "v1", 0.3),
            ScoredResult("r4", "v2", 1.4),
        ],
        dead_letters=["r5"],
        results_committed=4,
        results_uncommitted=7,
        offsets=[
            PartitionOffsets("results", 0, 0, 5, 5),
            PartitionOffsets("results", 1, 0, 6, 6),
            PartitionOffsets("dead-letters", 0, 0, 2, 2),
        ],
    )


def verdict(evidence: Evidence | None = None, **kwargs):
    args = {"expected": expected, "restarts": 2, "faults": 2} | kwargs
    return judge(evidence or clean(), **args)


CHECKS = [
    "c1_no_loss",
    "c2_no_duplicates",
    "c3_no_phantoms",
    "c4_scores_correct",
    "c5_fault_mid_transaction",
    "c6_nothing_open",
    "c7_logs_clean",
    "c8_restarts_match",
    "c9_recovery",
]


def statuses(v) -> dict[str, str]:
    return {name: getattr(v, name).status for name in CHECKS}


def failing(v) -> set[str]:
    return {name for name, status in statuses(v).items() if status == "fail"}


def test_a_clean_run_passes_every_check():
    v = verdict()
    assert statuses(v) == dict.fromkeys(CHECKS, "pass")
    assert v.passed and v.conclusive
    assert (v.acked, v.results, v.dead_letters, v.lost, v.duplicated, v.phantoms) == (5, 4, 1, 0, 0, 0)


def test_a_lost_record_fails_c1_and_the_detail_names_it():
    evidence = replace(clean(), acked={"r1", "r2", "r3", "r4", "r5", "r6", "r7"})
    v = verdict(evidence)
    assert failing(v) == {"c1_no_loss"}
    assert not v.passed
    assert v.lost == 2
    assert v.c1_no_loss.examples == ("r6", "r7")
    assert "2 of 7" in v.c1_no_loss.detail
    assert "r6" in v.c1_no_loss.detail and "r7" in v.c1_no_loss.detail


def test_a_record_only_dead_lettered_is_not_lost():
    evidence = replace(clean(), results=clean().results[:3], dead_letters=["r5", "r4"])
    assert verdict(evidence).c1_no_loss.status == "pass"


def test_a_result_written_twice_fails_c2():
    e = clean()
    evidence = replace(e, results=[*e.results, ScoredResult("r2", "v1", 0.2)], results_committed=5)
    v = verdict(evidence)
    assert failing(v) == {"c2_no_duplicates"}
    assert v.duplicated == 1
    assert v.c2_no_duplicates.examples == ("r2",)


def test_a_record_with_a_result_and_a_dead_letter_is_a_duplicate():
    evidence = replace(clean(), dead_letters=["r5", "r3"])
    v = verdict(evidence)
    assert failing(v) == {"c2_no_duplicates"}
    assert v.c2_no_duplicates.examples == ("r3",)
    assert v.duplicated == 1


def test_an_output_nobody_sent_fails_c3():
    e = clean()
    evidence = replace(e, results=[*e.results, ScoredResult("r99", "v1", 9.9)], results_committed=5)
    v = verdict(evidence)
    # r99 has no offline score either, so C4 fails with it too.
    assert failing(v) == {"c3_no_phantoms", "c4_scores_correct"}
    assert v.phantoms == 1
    assert v.c3_no_phantoms.examples == ("r99",)


def test_an_output_sent_but_never_acked_is_no_phantom():
    e = clean()
    evidence = replace(e, dead_letters=["r5", "r6"], sent={"r1", "r2", "r3", "r4", "r5", "r6"})
    v = verdict(evidence)
    assert v.c3_no_phantoms.status == "pass"
    assert v.phantoms == 0


def test_undecodable_output_fails_c3():
    assert verdict(replace(clean(), undecodable=1)).c3_no_phantoms.status == "fail"


def test_a_wrong_score_fails_c4():
    e = clean()
    evidence = replace(e, results=[*e.results[:3], ScoredResult("r4", "v2", 0.4)])  # v1's score under v2's name
    v = verdict(evidence)
    assert failing(v) == {"c4_scores_correct"}
    assert v.c4_scores_correct.examples == ("r4",)


def test_c4_tolerance_is_absolute_and_inclusive():
    e = clean()
    off = replace(e, results=[*e.results[:3], ScoredResult("r4", "v2", 1.4 + 5e-7)])
    assert verdict(off).c4_scores_correct.status == "pass"
    further = replace(e, results=[*e.results[:3], ScoredResult("r4", "v2", 1.4 + 5e-6)])
    assert verdict(further).c4_scores_correct.status == "fail"
    assert verdict(further, tolerance=1e-5).c4_scores_correct.status == "pass"


def test_an_unknown_offline_score_nan_and_an_error_fail_c4():
    e = clean()
    unknown = replace(e, results=[*e.results[:3], ScoredResult("r4", "v3", 1.4)])
    assert verdict(unknown).c4_scores_correct.status == "fail"
    assert "no known offline score" in verdict(unknown).c4_scores_correct.detail
    nan = replace(e, results=[*e.results[:3], ScoredResult("r4", "v2", math.nan)])
    assert verdict(nan).c4_scores_correct.status == "fail"
    errored = replace(e, results=[*e.results[:3], ScoredResult("r4", "v2", 1.4, error="model crashed")])
    assert verdict(errored).c4_scores_correct.status == "fail"


def test_no_aborted_data_makes_the_run_inconclusive_not_failed():
    v = verdict(replace(clean(), results_uncommitted=4))
    assert v.c5_fault_mid_transaction.status == "inconclusive"
    assert v.passed
    assert not v.conclusive


def test_a_partition_with_lso_below_hw_fails_c6():
    e = clean()
    evidence = replace(e, offsets=[*e.offsets[:2], PartitionOffsets("dead-letters", 0, 0, 1, 2)])
    v = verdict(evidence)
    assert failing(v) == {"c6_nothing_open"}
    assert "dead-letters[0]" in v.c6_nothing_open.detail


def test_an_open_transaction_fails_c6():
    v = verdict(replace(clean(), open_transactions=["faults-abc-keyed-0"]))
    assert v.c6_nothing_open.status == "fail"
    assert verdict(replace(clean(), open_transactions=[])).c6_nothing_open.status == "pass"


def test_a_flagged_log_line_fails_c7():
    finding = LogFinding("tm.log", 12, "data loss", "... In both cases this most likely signals data loss ...")
    v = verdict(log_findings=[finding])
    assert failing(v) == {"c7_logs_clean"}
    assert v.c7_logs_clean.examples == ("tm.log:12: ... In both cases this most likely signals data loss ...",)


@pytest.mark.parametrize(("restarts", "faults"), [(3, 2), (1, 2), (0, 1)])
def test_restarts_other_than_the_faults_fail_c8(restarts, faults):
    v = verdict(restarts=restarts, faults=faults)
    assert failing(v) == {"c8_restarts_match"}


def test_an_unknown_restart_count_is_inconclusive():
    assert verdict(restarts=None).c8_restarts_match.status == "inconclusive"


TIMINGS = [FaultTiming(100.0, 104.0, 109.0, 112.5), FaultTiming(200.0, 203.0, 210.0, 207.0)]


def test_c9_reports_each_recovery_and_the_longest():
    v = verdict(timings=TIMINGS)
    assert v.c9_recovery.status == "pass"
    first, second = v.recoveries
    assert (first.to_running_s, first.to_checkpoint_s, first.to_caught_up_s) == (4.0, 9.0, 12.5)
    assert (second.to_running_s, second.to_checkpoint_s, second.to_caught_up_s) == (3.0, 10.0, 7.0)
    assert v.longest_recovery_s == 12.5


def test_c9_fails_only_against_a_bound():
    assert verdict(timings=TIMINGS, recovery_bound_s=12.0).c9_recovery.status == "fail"
    assert verdict(timings=TIMINGS, recovery_bound_s=13.0).c9_recovery.status == "pass"
    never = [FaultTiming(100.0, 104.0, None, None)]
    assert verdict(timings=never).c9_recovery.status == "inconclusive"
    assert verdict(timings=never, recovery_bound_s=60.0).c9_recovery.status == "fail"


def test_examples_are_capped_at_twenty():
    evidence = replace(clean(), acked={f"x{n:02d}" for n in range(30)} | {"r1", "r2", "r3", "r4", "r5"})
    v = verdict(evidence)
    assert v.lost == 30
    assert v.c1_no_loss.examples == tuple(f"x{n:02d}" for n in range(20))


def test_the_json_has_every_field_in_a_fixed_order():
    lost = replace(clean(), acked={"r1", "r2", "r3", "r4", "r5", "r6"})
    body = json.loads(verdict(lost, timings=TIMINGS[:1]).to_json())
    assert list(body) == ["passed", "conclusive", "checks", "counts", "recoveries"]
    assert body["passed"] is False and body["conclusive"] is True
    assert list(body["checks"]) == CHECKS
    for check in body["checks"].values():
        assert list(check) == ["status", "detail", "examples"]
    assert body["checks"]["c1_no_loss"]["examples"] == ["r6"]
    assert body["counts"] == {
        "acked": 6,
        "results": 4,
        "dead_letters": 1,
        "lost": 1,
        "duplicated": 0,
        "phantoms": 0,
        "restarts": 2,
        "faults": 2,
        "longest_recovery_s": 12.5,
    }
    assert body["recoveries"] == [
        {"injected_at": 100.0, "to_running_s": 4.0, "to_checkpoint_s": 9.0, "to_caught_up_s": 12.5}
    ]
