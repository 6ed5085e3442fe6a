"""The oracle's data: the evidence a fault run leaves, each check's outcome, and the verdict they add up to.

A check is ``"pass"``, ``"fail"`` or ``"inconclusive"``; a run passes when no
check failed. :mod:`serving.faults.oracle` computes them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Status = Literal["pass", "fail", "inconclusive"]

#: How many example ids (or lines) a check keeps.
MAX_EXAMPLES = 20

#: The offline score of ``record_id`` under model ``version``; None when the oracle does not know it.
ExpectedScore = Callable[[str, str], "float | None"]


@dataclass(frozen=True)
class Check:
    """One check's outcome: its status, one line on why, and up to :data:`MAX_EXAMPLES` example ids."""

    status: Status
    detail: str
    examples: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """``{"status", "detail", "examples"}``, in that order."""
        return {"status": self.status, "detail": self.detail, "examples": list(self.examples)}


@dataclass(frozen=True)
class ScoredResult:
    """The part of one committed ``ServingResult`` the oracle needs."""

    record_id: str
    model_version: str
    score: float
    #: Non-empty when scoring failed (the score is then meaningless).
    error: str = ""


@dataclass(frozen=True)
class PartitionOffsets:
    """One partition's offsets after the run: low watermark, last stable offset, high watermark."""

    topic: str
    partition: int
    low: int
    lso: int
    high: int


class Timing(Protocol):
    """When one fault was injected and when the job got over it (the runner's fault record fits)."""

    injected_at: float
    running_at: float | None
    checkpoint_at: float | None
    caught_up_at: float | None


@dataclass(frozen=True)
class FaultTiming:
    """A :class:`Timing`: wall-clock seconds, None for what was never seen.

    Attributes:
        injected_at: The fault was injected.
        running_at: The job was RUNNING again.
        checkpoint_at: The first checkpoint completed after ``running_at``.
        caught_up_at: The output had caught up with the input again.
    """

    injected_at: float
    running_at: float | None = None
    checkpoint_at: float | None = None
    caught_up_at: float | None = None


@dataclass(frozen=True)
class Evidence:
    """What a run left behind, as read after it ended.

    Attributes:
        acked: Ids of the input records the broker acknowledged.
        results: Every committed (``read_committed``) result on the results topic.
        dead_letters: The record id of every committed dead letter, one entry per message.
        results_committed: Messages on the results topic read with ``read_committed``.
        results_uncommitted: Messages on the results topic read with ``read_uncommitted`` (aborted ones too).
        offsets: Every partition of the output topics.
        sent: Ids of every input record the driver tried to send, acked or not; None when only
            ``acked`` is known. An output for a sent but unacked record is no phantom (the ack may
            have been lost after the write).
        undecodable: Messages on the output topics that are neither a result nor a dead letter.
        open_transactions: Transactional ids still open, when the broker could be asked; None when
            it could not (then LSO == HW on every partition is the only evidence, see C6).
    """

    acked: Collection[str]
    results: Sequence[ScoredResult]
    dead_letters: Sequence[str]
    results_committed: int
    results_uncommitted: int
    offsets: Sequence[PartitionOffsets]
    sent: Collection[str] | None = None
    undecodable: int = 0
    open_transactions: Sequence[str] | None = None


@dataclass(frozen=True)
class Recovery:
    """Seconds from one fault's injection to RUNNING, to the next checkpoint and to caught-up output."""

    injected_at: float
    to_running_s: float | None
    to_checkpoint_s: float | None
    to_caught_up_s: float | None

    @property
    def longest_s(self) -> float | None:
        """The fault's recovery time: the latest of the three, None when any was never seen."""
        spans = (self.to_running_s, self.to_checkpoint_s, self.to_caught_up_s)
        return None if any(s is None for s in spans) else max(s for s in spans if s is not None)


@dataclass(frozen=True)
class Verdict:
    """Every check's outcome and the counts behind them; ``passed`` is True when no check failed."""

    c1_no_loss: Check
    c2_no_duplicates: Check
    c3_no_phantoms: Check
    c4_scores_correct: Check
    c5_fault_mid_transaction: Check
    c6_nothing_open: Check
    c7_logs_clean: Check
    c8_restarts_match: Check
    c9_recovery: Check
    acked: int
    results: int
    dead_letters: int
    lost: int
    duplicated: int
    phantoms: int
    restarts: int | None
    faults: int
    longest_recovery_s: float | None
    recoveries: tuple[Recovery, ...] = field(default=())

    def checks(self) -> dict[str, Check]:
        """Check name -> outcome, C1 to C9."""
        return {name: getattr(self, name) for name in _CHECKS}

    @property
    def passed(self) -> bool:
        """No check failed (an inconclusive one does not fail the run)."""
        return all(check.status != "fail" for check in self.checks().values())

    @property
    def conclusive(self) -> bool:
        """Every check reached pass or fail."""
        return all(check.status != "inconclusive" for check in self.checks().values())

    def to_json(self) -> str:
        """One JSON object: passed, conclusive, the checks C1-C9, the counts, the recoveries; fixed key order."""
        body: dict[str, Any] = {"passed": self.passed, "conclusive": self.conclusive}
        body["checks"] = {name: check.as_dict() for name, check in self.checks().items()}
        body["counts"] = {name: getattr(self, name) for name in _COUNTS}
        body["recoveries"] = [
            {
                "injected_at": r.injected_at,
                "to_running_s": r.to_running_s,
                "to_checkpoint_s": r.to_checkpoint_s,
                "to_caught_up_s": r.to_caught_up_s,
            }
            for r in self.recoveries
        ]
        return json.dumps(body)


_CHECKS = (
    "c1_no_loss",
    "c2_no_duplicates",
    "c3_no_phantoms",
    "c4_scores_correct",
    "c5_fault_mid_transaction",
    "c6_nothing_open",
    "c7_logs_clean",
    "c8_restarts_match",
    "c9_recovery",
)
_COUNTS = ("acked", "results", "dead_letters", "lost", "duplicated", "phantoms", "restarts", "faults")
_COUNTS += ("longest_recovery_s",)
