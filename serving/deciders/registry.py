"""Deciders are plug-ins: the ``modelserving.deciders`` entry-point group names them, as formats are named.

A decider is one module with a function ``decide(responses, **params)`` and
one line in a package's ``pyproject.toml``::

    [project.entry-points."modelserving.deciders"]
    my_decider = "mypackage.my_decider:my_decider"

Its parameters are keyword arguments with defaults; it must check them
before it looks at the responses (:func:`resolve` calls it once with none,
so a bad parameter is an error when the ensemble is loaded, not per record).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from serving.deciders.base import DeciderError, Response

GROUP = "modelserving.deciders"

#: A decider with its parameters bound: responses in, the deciding response (or None) out.
Decider = Callable[[Sequence[Response]], Response | None]


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def decider_names() -> list[str]:
    """Every registered decider, sorted; imports none of them."""
    return sorted(_entry_points())


@functools.cache
def decider_function(name: str) -> Callable[..., Response | None]:
    """The function registered as ``name``.

    Raises:
        DeciderError: no such decider, or its entry point does not load a function.
    """
    entry = _entry_points().get(name)
    if entry is None:
        known = ", ".join(decider_names()) or "(none: is the package installed?)"
        raise DeciderError(f"unknown decider {name!r}; the known deciders are {known}")
    try:
        function = entry.load()
    except Exception as exc:  # a broken plug-in must not look like a broken ensemble
        raise DeciderError(f"decider {name!r} could not be loaded from {entry.value}: {exc}") from exc
    if not callable(function):
        raise DeciderError(f"decider {name!r} ({entry.value}) is not a function")
    return function


def resolve(name: str, params: Mapping[str, Any] | None = None) -> Decider:
    """Decider ``name`` with ``params`` bound, checked now.

    Raises:
        DeciderError: an unknown decider, a parameter it does not take, or a bad value (one line each).
    """
    function = decider_function(name)
    params = dict(params or {})
    try:
        inspect.signature(function).bind([], **params)
    except TypeError as exc:
        raise DeciderError(f"decider {name} does not take parameters {sorted(params)}: {exc}") from exc
    bound = functools.partial(function, **params)
    bound([])  # the decider checks its parameters before anything else
    return bound
