"""The fault campaign's oracle: pure checks C1-C9 over a run's evidence, and the verdict they add up to.

Nothing here talks to Kafka, Flink or the file system: :mod:`serving.faults.evidence`
and :mod:`serving.faults.logscan` gather the evidence, the runner supplies the
rest (restart count, fault timings, the offline scores), and :func:`judge`
decides (the data types live in :mod:`serving.faults.verdict`).

The run is assumed to serve each record with one model (one result per record
id): a second result for the same id is a duplicate whatever version it names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from serving.faults.logscan import LogFinding
from serving.faults.verdict import (
    MAX_EXAMPLES,
    Check,
    Evidence,
    ExpectedScore,
    FaultTiming,
    PartitionOffsets,
    Recovery,
    ScoredResult,
    Status,
    Timing,
    Verdict,
)

__all__ = [
    "Check",
    "Evidence",
    "ExpectedScore",
    "FaultTiming",
    "PartitionOffsets",
    "Recovery",
    "ScoredResult",
    "Status",
    "Timing",
    "Verdict",
    "judge",
]


def _examples(ids: Collection[str]) -> tuple[str, ...]:
    return tuple(sorted(ids)[:MAX_EXAMPLES])


def _some(ids: Collection[str]) -> str:
    """``"a, b, c"`` or ``"a, b, c, ..."``: a few ids for a detail line."""
    shown = sorted(ids)[:5]
    return ", ".join(shown) + (", ..." if len(ids) > len(shown) else "")


def check_loss(acked: Collection[str], results: Mapping[str, int], dead_letters: Mapping[str, int]) -> Check:
    """C1: every acked input id is in the committed results or the committed dead letters."""
    lost = set(acked) - set(results) - set(dead_letters)
    if lost:
        return Check("fail", f"{len(lost)} of {len(set(acked))} acked records lost: {_some(lost)}", _examples(lost))
    return Check("pass", f"all {len(set(acked))} acked records have a result or a dead letter")


def check_duplicates(results: Mapping[str, int], dead_letters: Mapping[str, int]) -> Check:
    """C2: no id has two results, two dead letters, or a result and a dead letter."""
    twice = {i for i, n in results.items() if n > 1} | {i for i, n in dead_letters.items() if n > 1}
    both = set(results) & set(dead_letters)
    duplicated = twice | both
    if duplicated:
        extra = sum(n - 1 for n in results.values() if n > 1) + sum(n - 1 for n in dead_letters.values() if n > 1)
        return Check(
            "fail",
            f"{len(duplicated)} ids duplicated ({len(twice)} written twice or more, {extra} extra messages; "
            f"{len(both)} both a result and a dead letter): {_some(duplicated)}",
            _examples(duplicated),
        )
    return Check("pass", "every id has at most one output")


def check_phantoms(known: Collection[str], outputs: Collection[str], undecodable: int = 0) -> Check:
    """C3: every output id was sent (or acked); an undecodable output message counts as a phantom too."""
    phantoms = set(outputs) - set(known)
    if phantoms or undecodable:
        garbled = f"; {undecodable} undecodable output messages" if undecodable else ""
        return Check("fail", f"{len(phantoms)} output ids nobody sent: {_some(phantoms)}{garbled}", _examples(phantoms))
    return Check("pass", f"all {len(set(outputs))} output ids were sent")


def check_scores(results: Sequence[ScoredResult], expected: ExpectedScore, tolerance: float = 1e-6) -> Check:
    """C4: each result's score is within ``tolerance`` (absolute) of the offline score of the version it names.

    A result whose offline score is unknown (``expected`` returns None) fails, as does a NaN on either
    side and a result that carries a scoring error.
    """
    wrong: dict[str, str] = {}
    unknown: set[str] = set()
    for result in results:
        want = expected(result.model_version, result.record_id)
        if result.error:
            wrong[result.record_id] = f"{result.record_id}@{result.model_version}: error {result.error[:80]!r}"
        elif want is None:
            unknown.add(result.record_id)
        elif not abs(result.score - want) <= tolerance:  # `not <=` so a NaN fails
            wrong[result.record_id] = f"{result.record_id}@{result.model_version}: {result.score!r} != {want!r}"
    if wrong or unknown:
        parts = []
        if wrong:
            first = "; ".join(sorted(wrong.values())[:3])
            parts.append(f"{len(wrong)} wrong scores (tolerance {tolerance:g}): {first}")
        if unknown:
            parts.append(f"{len(unknown)} results with no known offline score: {_some(unknown)}")
        return Check("fail", "; ".join(parts), _examples(set(wrong) | unknown))
    return Check("pass", f"all {len(results)} scores within {tolerance:g} of the offline scores")


def check_aborted_data(committed: int, uncommitted: int) -> Check:
    """C5: the fault hit mid-transaction, shown by aborted data: ``read_uncommitted`` saw more than ``read_committed``.

    Without aborted data the run proves less than it should, so it is inconclusive, not failed.
    """
    counts = f"results topic: {uncommitted} messages read_uncommitted, {committed} read_committed"
    if uncommitted > committed:
        return Check("pass", f"{counts} ({uncommitted - committed} aborted)")
    return Check("inconclusive", f"{counts}: no aborted data, the fault did not hit an open transaction")


def check_nothing_open(offsets: Sequence[PartitionOffsets], open_transactions: Sequence[str] | None = None) -> Check:
    """C6: on every output partition the last stable offset equals the high watermark, and no transaction is open.

    confluent-kafka 2.16 (the installed client) has no ``list_transactions`` /
    ``describe_transactions``, so ``open_transactions`` is usually None and
    LSO == HW is the evidence: an open transaction with data on a partition
    holds that partition's LSO below its HW. (A transaction that wrote nothing
    yet cannot be seen that way, and holds back nothing either.)
    """
    held = [o for o in offsets if o.lso != o.high]
    where = [f"{o.topic}[{o.partition}] LSO {o.lso} < HW {o.high}" for o in held]
    if open_transactions:
        where.append(f"{len(open_transactions)} open transactions: {_some(open_transactions)}")
    if where:
        return Check("fail", "; ".join(where), _examples([f"{o.topic}[{o.partition}]" for o in held]))
    if not offsets:
        return Check("inconclusive", "no output partitions were read")
    how = "no open transactions" if open_transactions is not None else "open transactions not listable, LSO == HW"
    return Check("pass", f"LSO == HW on all {len(offsets)} output partitions; {how}")


def check_logs(findings: Sequence[LogFinding]) -> Check:
    """C7: no log line the scan flagged (data loss, fencing, failed committables)."""
    if findings:
        return Check(
            "fail",
            f"{len(findings)} log lines signal data loss or fencing; first: {findings[0]}",
            tuple(str(f) for f in findings[:MAX_EXAMPLES]),
        )
    return Check("pass", "no log line signals data loss or fencing")


def check_restarts(restarts: int | None, faults: int) -> Check:
    """C8: the job restarted exactly once per injected fault; inconclusive when the restart count is unknown."""
    if restarts is None:
        return Check("inconclusive", f"restart count unknown, {faults} injected faults")
    if restarts != faults:
        return Check("fail", f"{restarts} restarts for {faults} injected faults")
    return Check("pass", f"{restarts} restarts for {faults} injected faults")


def recoveries(timings: Sequence[Timing]) -> tuple[Recovery, ...]:
    """Per fault, the seconds from injection to RUNNING, to the next checkpoint, and to caught-up output."""

    def since(t: Timing, at: float | None) -> float | None:
        return None if at is None else at - t.injected_at

    return tuple(
        Recovery(t.injected_at, since(t, t.running_at), since(t, t.checkpoint_at), since(t, t.caught_up_at))
        for t in timings
    )


def check_recovery(spans: Sequence[Recovery], bound_s: float | None = None) -> Check:
    """C9: recovery times; fails only when ``bound_s`` is given and a fault took longer or never recovered.

    Without a bound it reports: pass when every fault recovered, inconclusive when a time is missing.
    """
    unrecovered = [r for r in spans if r.longest_s is None]
    times = [r.longest_s for r in spans if r.longest_s is not None]
    longest = max(times) if times else None
    summary = f"{len(spans)} faults, longest recovery {'n/a' if longest is None else f'{longest:.1f}s'}"
    missing = f"; {len(unrecovered)} faults with a missing time" if unrecovered else ""
    if bound_s is not None:
        if unrecovered or (longest is not None and longest > bound_s):
            return Check("fail", f"{summary} (bound {bound_s:g}s){missing}")
        return Check("pass", f"{summary} (bound {bound_s:g}s)")
    if unrecovered:
        return Check("inconclusive", f"{summary}{missing}")
    return Check("pass", f"{summary} (no bound)")


def _counts(ids: Sequence[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for i in ids:
        counts[i] = counts.get(i, 0) + 1
    return counts


def judge(
    evidence: Evidence,
    *,
    expected: ExpectedScore,
    restarts: int | None,
    faults: int,
    log_findings: Sequence[LogFinding] = (),
    timings: Sequence[Timing] = (),
    tolerance: float = 1e-6,
    recovery_bound_s: float | None = None,
) -> Verdict:
    """Run C1-C9 over one run's evidence.

    Dead letters without a record id cannot be matched to an input (the jobs give an
    undecodable data record its ``topic/partition/offset`` as id, so these are not
    records' dead letters): they count as dead letters but take no part in C1-C3.

    Args:
        evidence: What Kafka held after the run (see :func:`serving.faults.evidence.collect`).
        expected: The offline score of (model version, record id), None when unknown.
        restarts: Flink's ``numRestarts`` at the end of the run; None when unknown (C8 inconclusive).
        faults: How many faults the runner injected.
        log_findings: The lines :func:`serving.faults.logscan.scan_logs` flagged.
        timings: One entry per injected fault (a :class:`FaultTiming` or the runner's own record).
        tolerance: C4's absolute tolerance.
        recovery_bound_s: C9's bound on each fault's recovery; None: C9 only reports.
    """
    results = _counts([r.record_id for r in evidence.results])
    dead = _counts([i for i in evidence.dead_letters if i])
    acked = set(evidence.acked)
    known = acked | set(evidence.sent or ())
    spans = recoveries(timings)
    times = [r.longest_s for r in spans if r.longest_s is not None]
    return Verdict(
        c1_no_loss=check_loss(acked, results, dead),
        c2_no_duplicates=check_duplicates(results, dead),
        c3_no_phantoms=check_phantoms(known, set(results) | set(dead), evidence.undecodable),
        c4_scores_correct=check_scores(evidence.results, expected, tolerance),
        c5_fault_mid_transaction=check_aborted_data(evidence.results_committed, evidence.results_uncommitted),
        c6_nothing_open=check_nothing_open(evidence.offsets, evidence.open_transactions),
        c7_logs_clean=check_logs(log_findings),
        c8_restarts_match=check_restarts(restarts, faults),
        c9_recovery=check_recovery(spans, recovery_bound_s),
        acked=len(acked),
        results=len(evidence.results),
        dead_letters=len(evidence.dead_letters),
        lost=len(acked - set(results) - set(dead)),
        duplicated=sum(1 for i in set(results) | set(dead) if results.get(i, 0) + dead.get(i, 0) > 1),
        phantoms=len((set(results) | set(dead)) - known),
        restarts=restarts,
        faults=faults,
        longest_recovery_s=max(times) if times else None,
        recoveries=spans,
    )
