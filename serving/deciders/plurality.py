"""``plurality(quorum=k)``: consensus; the answer most members gave, when at least ``quorum`` gave it."""

from __future__ import annotations

from collections.abc import Sequence

from serving.deciders.base import DeciderError, Response, fallback, valid_responses


def plurality(responses: Sequence[Response], quorum: int = 1) -> Response | None:
    """The answer of most valid responses, decided by its highest-priority voter.

    Answers are compared as labels (numbers when they are), else as scores.
    A tie between answers goes to the one whose best voter has the higher
    priority. When the winning answer has fewer than ``quorum`` votes, the
    fallback rule decides: the highest-priority valid response. None when no
    response is valid.

    Raises:
        DeciderError: ``quorum`` is not a whole number of at least 1.
    """
    if isinstance(quorum, bool) or not isinstance(quorum, int) or quorum < 1:
        raise DeciderError(f"decider plurality parameter quorum must be a whole number of at least 1, not {quorum!r}")
    valid = valid_responses(responses)
    votes: dict[float | str, list[Response]] = {}
    for response in valid:  # in priority order: each answer's first voter is its best
        votes.setdefault(response.answer, []).append(response)
    if not votes:
        return None
    # max() keeps the first of equals, and dicts keep insertion (priority) order: ties go to priority.
    winners = max(votes.values(), key=len)
    if len(winners) < quorum:
        return fallback(valid)
    return winners[0]
