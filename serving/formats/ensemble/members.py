"""Running an ensemble's members on one batch, within the latency budget.

``wallclock``: the fallback member (the lowest priority) is scored in the
calling thread, always; the others are scored at the same time on a thread
pool, and collected until ``budget_ms`` after the batch started. A member
not done by then is ``late`` (its call finishes in the background and is
dropped: nothing pending is kept), one that raised is ``error``.

``declared``: members whose metadata ``expected_latency_ms`` exceeds the
budget are ``late`` up front and never called; the others are all awaited,
so the same records give the same outcomes, run after run, restore or not.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from serving.core.model import BatchScores, Model
from serving.deciders.base import ERROR, LATE, OK
from serving.formats.ensemble.document import EXPECTED_LATENCY


@dataclass(frozen=True)
class Outcome:
    """What one member did with a batch: its status, its time, and its scores when ``ok``."""

    name: str
    version: str
    priority: int
    status: str
    latency_us: int = 0
    scores: BatchScores | None = None
    detail: str = ""

    @property
    def label(self) -> str:
        """``name:version``."""
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class Member:
    """A loaded member and its priority."""

    priority: int
    model: Model

    def declared_ms(self) -> float:
        """The latency its metadata declares (``declared`` mode checked it is there)."""
        return float(self.model.descriptor.metadata.get(EXPECTED_LATENCY, "0"))


def _timed(member: Member, features: np.ndarray) -> Outcome:
    """Score the batch with one member; whatever it raises becomes an ``error`` outcome."""
    model = member.model
    started = time.perf_counter_ns()
    try:
        scores = model.score_batch(features)
    except Exception as exc:  # a member's failure is an outcome, never the ensemble's
        elapsed = (time.perf_counter_ns() - started) // 1000
        reason = getattr(exc, "reason", type(exc).__name__)
        return Outcome(model.name, model.version, member.priority, ERROR, elapsed, None, f"{reason}: {exc}")
    elapsed = (time.perf_counter_ns() - started) // 1000
    if len(scores) != len(features):
        detail = f"returned {len(scores)} scores for {len(features)} rows"
        return Outcome(model.name, model.version, member.priority, ERROR, elapsed, None, detail)
    return Outcome(model.name, model.version, member.priority, OK, elapsed, scores)


def _skipped(member: Member, status: str, detail: str, latency_us: int = 0) -> Outcome:
    model = member.model
    return Outcome(model.name, model.version, member.priority, status, latency_us, None, detail)


def run_wallclock(
    members: Sequence[Member], features: np.ndarray, budget_ms: int, pool: ThreadPoolExecutor
) -> list[Outcome]:
    """Every member's outcome, in ``members`` order (priority order, the fallback last); see the module docstring."""
    *others, fallback = members
    started = time.perf_counter()
    futures: list[Future[Outcome]] = [pool.submit(_timed, m, features) for m in others]
    last = _timed(fallback, features)
    deadline = started + budget_ms / 1000
    outcomes = []
    for member, future in zip(others, futures):
        try:
            outcomes.append(future.result(timeout=max(0.0, deadline - time.perf_counter())))
        except FutureTimeout:
            future.cancel()  # not started yet (the pool is busy with earlier late calls): never starts
            waited = int((time.perf_counter() - started) * 1_000_000)
            outcomes.append(_skipped(member, LATE, f"no answer within the {budget_ms} ms budget", waited))
    return [*outcomes, last]


def run_declared(
    members: Sequence[Member], features: np.ndarray, budget_ms: int, pool: ThreadPoolExecutor
) -> list[Outcome]:
    """Every member's outcome, in ``members`` order; members declared slower than the budget are not called."""
    called = {id(m): pool.submit(_timed, m, features) for m in members if m.declared_ms() <= budget_ms}
    outcomes = []
    for member in members:
        future = called.get(id(member))
        if future is None:
            detail = f"declares {EXPECTED_LATENCY} {member.declared_ms():g}, over the {budget_ms} ms budget"
            outcomes.append(_skipped(member, LATE, detail))
        else:
            outcomes.append(future.result())
    return outcomes
