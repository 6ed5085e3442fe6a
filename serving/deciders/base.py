"""What every decider shares: a member's response, the priority order, validity and the fallback rule.

Priority: a smaller number is a higher priority (``1`` comes first); an
ensemble's priorities are unique, so the order is total. Every decider sorts
the responses itself, so its answer never depends on the order they arrived in.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from serving.errors import ConfigError

#: A member answered within the budget.
OK = "ok"
#: A member missed the budget (or was excluded up front by its declared latency).
LATE = "late"
#: A member raised while scoring.
ERROR = "error"
STATUSES = (OK, LATE, ERROR)


class DeciderError(ConfigError):
    """A decider's name or parameters are wrong."""

    reason = "bad decider"


@dataclass(frozen=True)
class Response:
    """One member's answer for one record.

    ``score`` follows the result rule (a classifier's winning label as a
    number); ``label`` is the winning class label when the member gave
    probabilities (``""`` otherwise); ``latency_us`` is the member's time on
    the record's batch.
    """

    member: str
    version: str
    priority: int
    status: str
    score: float = math.nan
    label: str = ""
    probabilities: tuple[float, ...] | None = None
    latency_us: int = 0

    @property
    def valid(self) -> bool:
        """Whether this response can decide: answered in time with a finite score."""
        return self.status == OK and math.isfinite(self.score)

    @property
    def answer(self) -> float | str:
        """What votes compare: the label (as a number when it is one), else the score."""
        if self.label:
            try:
                return float(self.label)
            except ValueError:
                return self.label
        return self.score

    @property
    def confidence(self) -> float | None:
        """The top class probability, or None for a response without probabilities."""
        if not self.probabilities:
            return None
        return max(self.probabilities)


def ranked(responses: Iterable[Response]) -> list[Response]:
    """The responses in priority order (ties, which an ensemble forbids, by member name and version)."""
    return sorted(responses, key=lambda r: (r.priority, r.member, r.version))


def valid_responses(responses: Iterable[Response]) -> list[Response]:
    """The valid responses, in priority order."""
    return [r for r in ranked(responses) if r.valid]


def fallback(responses: Iterable[Response]) -> Response | None:
    """The fallback rule every decider ends in: the highest-priority valid response (None: none is valid)."""
    valid = valid_responses(responses)
    return valid[0] if valid else None


def number_param(value: object, name: str, decider: str, *, low: float, high: float | None = None) -> float:
    """A numeric parameter in [low, high], or :class:`DeciderError` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DeciderError(f"decider {decider} parameter {name} must be a number, not {value!r}")
    if value < low or (high is not None and value > high):
        bounds = f"between {low:g} and {high:g}" if high is not None else f"at least {low:g}"
        raise DeciderError(f"decider {decider} parameter {name} must be {bounds}, not {value!r}")
    return float(value)
