"""Deciders: pure functions that pick one answer from an ensemble's member responses, per record.

A decider is a function ``decide(responses, **params) -> Response | None``
registered in the ``modelserving.deciders`` entry-point group (see
:mod:`serving.deciders.registry`): a new decider is one module and one line
in ``pyproject.toml``. :mod:`serving.deciders.base` holds what they share:
the :class:`Response`, the priority order and the fallback rule.
"""

from serving.deciders.base import ERROR, LATE, OK, Response, ranked, valid_responses
from serving.deciders.registry import Decider, decider_names, resolve

__all__ = ["ERROR", "LATE", "OK", "Decider", "Response", "decider_names", "ranked", "resolve", "valid_responses"]
