"""From a finished run to its verdict: read the evidence, scan the logs, apply the checks."""

from __future__ import annotations

import collections
import json

from serving.faults.catalog import Scenario
from serving.faults.evidence import collect
from serving.faults.expected import offline_scores
from serving.faults.logscan import scan_logs
from serving.faults.oracle import check_loss, judge
from serving.faults.run import RunRecord, record_summary


def judge_run(record: RunRecord, scenario: Scenario) -> dict:
    """The verdict of ``record`` as a JSON-ready dict: the checks C1-C9, the counts, and the run's own facts.

    C8 expects ``scenario.restarts_per_fault`` restarts per fault; a scenario
    whose faults may or may not restart the job (None) leaves C8 inconclusive.
    Python workers left behind by a killed TaskManager are counted beside the checks.
    A negative control (``scenario.must_fail``) passes only when the checks it names fail.
    """
    from serving.records import wine

    evidence = collect(record.settings, acked=record.truth.acked_ids)
    findings = scan_logs(record.log_files, missing_ok=True)
    recommits = [f for f in findings if _fenced_recommit(f.text)]
    results = collections.Counter(r.record_id for r in evidence.results)
    if check_loss(evidence.acked, results, collections.Counter(evidence.dead_letters)).status == "pass":
        # The committer's "most likely signals data loss" on a fenced re-commit after recovery is, when
        # nothing was lost, the re-commit of a transaction committed before the fault (FLINK-8086,
        # FLINK-40626): reported beside the checks, not as C7.
        findings = [f for f in findings if not _fenced_recommit(f.text)]
    features = wine.read_wine_csv(wine.reference_csv()).features
    expected_restarts = None
    if scenario.restarts_per_fault is not None:
        expected_restarts = scenario.restarts_per_fault * len(record.faults)
    verdict = judge(
        evidence,
        expected=offline_scores(record.truth, features, _ids_by_version(evidence.results)),
        restarts=record.restarts if expected_restarts is not None else None,
        faults=expected_restarts if expected_restarts is not None else len(record.faults),
        log_findings=findings,
        timings=record.faults,
    )
    result = json.loads(verdict.to_json())
    result["scenario"] = scenario.name
    result["counts"]["restarts"] = record.restarts
    result["counts"]["faults"] = len(record.faults)
    result["run"] = record_summary(record)
    # Not a check of the output: PyFlink workers a SIGKILLed TaskManager leaves behind (the run kills them).
    result["orphan_python_workers"] = len(record.orphans)
    result["fenced_recommits_after_recovery"] = len(recommits)
    if scenario.must_fail:
        _as_negative_control(result, scenario.must_fail)
    return {"scenario": scenario.name, **{k: v for k, v in result.items() if k != "scenario"}}


def _ids_by_version(results) -> dict[str, set[str]]:
    """The record ids each model version's results name: what C4 scores offline per version."""
    found: dict[str, set[str]] = collections.defaultdict(set)
    for result in results:
        found[result.model_version].add(result.record_id)
    return found


def _as_negative_control(result: dict, must_fail: tuple[str, ...]) -> None:
    """A negative control passes when each of ``must_fail`` failed: the oracle saw what the fault did."""
    statuses = {name: result["checks"][name]["status"] for name in must_fail}
    result["negative_control"] = {"must_fail": list(must_fail), "statuses": statuses}
    result["passed"] = all(status == "fail" for status in statuses.values())


#: The lines of a commit after recovery that found its transaction's producer fenced.
_RECOMMIT = ("because its producer is already fenced", "ProducerFencedException", "Transiting to fatal error state")


def _fenced_recommit(text: str) -> bool:
    # The scan keeps a line's first 300 characters: the committer's line is known by its start.
    committer = "KafkaCommitter" in text and "Unable to commit transaction" in text
    return committer or any(marker in text for marker in _RECOMMIT)
