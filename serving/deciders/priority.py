"""``first_valid_by_priority``: the highest-priority member that answered in time (the smart one, else the fast)."""

from __future__ import annotations

from collections.abc import Sequence

from serving.deciders.base import Response, fallback


def first_valid_by_priority(responses: Sequence[Response]) -> Response | None:
    """The highest-priority valid response; None when none is valid. Takes no parameters."""
    return fallback(responses)
