"""``max_confidence(min_conf)``: quality; the member most sure of its answer, if sure enough."""

from __future__ import annotations

from collections.abc import Sequence

from serving.deciders.base import Response, fallback, number_param, valid_responses


def max_confidence(responses: Sequence[Response], min_conf: float = 0.0) -> Response | None:
    """The valid response with the highest top class probability, when that is at least ``min_conf``.

    Equal confidences go to the higher priority. Responses without
    probabilities (regressors) never win on confidence. Below ``min_conf``,
    or with no probabilities at all, the fallback rule decides (the
    highest-priority valid response); None when no response is valid.

    Raises:
        DeciderError: ``min_conf`` is not a number in [0, 1].
    """
    min_conf = number_param(min_conf, "min_conf", "max_confidence", low=0.0, high=1.0)
    valid = valid_responses(responses)
    rated = [r for r in valid if r.confidence is not None]
    if rated:
        best = max(rated, key=lambda r: r.confidence)  # the first of equals: the higher priority
        if best.confidence >= min_conf:
            return best
    return fallback(valid)
