"""Model formats are plug-ins: the ``modelserving.formats`` entry-point group names them.

A format is one module with a :class:`~serving.core.model.Model` subclass and
one line in a package's ``pyproject.toml``::

    [project.entry-points."modelserving.formats"]
    myformat = "mypackage.myformat:MyFormatModel"

Nothing else changes: a descriptor names it in ``ModelDescriptor.format``, the
CLI offers it as ``--type myformat``, and a directory scan recognises its
``suffixes``. The module is imported the first time a model of that format is
built (or its class is asked for), never when the names are listed; the class
imports its framework on first use too.

The four built-in formats also have a value of the protobuf ``ModelType``
enum, which older descriptors carry instead of ``format``.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

from serving.core.model import Model, ModelDescriptor, ModelType
from serving.errors import UnknownModelType

GROUP = "modelserving.formats"

#: The built-in formats' ``ModelType`` values: descriptors may name a format either way.
BUILTIN_TYPES: dict[str, int] = {
    "tensorflow": ModelType.TENSORFLOW,
    "tensorflow_saved": ModelType.TENSORFLOW_SAVED,
    "pmml": ModelType.PMML,
    "onnx": ModelType.ONNX,
}
_BUILTIN_NAMES = {value: name for name, value in BUILTIN_TYPES.items()}


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=GROUP)}


def refresh() -> None:
    """Forget what was discovered, so formats installed since (or put on ``sys.path``) are found."""
    _entry_points.cache_clear()
    format_class.cache_clear()


def format_names() -> list[str]:
    """Every registered format, sorted; imports none of them."""
    return sorted(_entry_points())


def parse_format(name: str) -> str:
    """The registered format ``name`` (any case), or :class:`UnknownModelType` naming the known ones."""
    wanted = name.strip().lower()
    if wanted not in _entry_points():
        known = ", ".join(format_names()) or "(none: is the package installed?)"
        raise UnknownModelType(f"unknown model format {name!r}; the known formats are {known}")
    return wanted


@functools.cache
def format_class(name: str) -> type[Model]:
    """The :class:`Model` subclass of format ``name``; imports its module on first use."""
    entry = _entry_points().get(parse_format(name))
    try:
        cls = entry.load()
    except Exception as exc:  # a broken plug-in must not look like a broken model
        raise UnknownModelType(f"model format {name!r} could not be loaded from {entry.value}: {exc}") from exc
    if not (isinstance(cls, type) and issubclass(cls, Model)):
        raise UnknownModelType(f"model format {name!r} ({entry.value}) is not a Model subclass")
    return cls


def format_of(descriptor: ModelDescriptor) -> str:
    """The format a descriptor names: its ``format`` field, else its built-in ``model_type``.

    Raises:
        UnknownModelType: neither names a registered format.
    """
    if descriptor.format:
        return parse_format(descriptor.format)
    name = _BUILTIN_NAMES.get(descriptor.model_type)
    if name is None:
        raise UnknownModelType(
            f"model message has unknown model type {descriptor.model_type} and no format; "
            f"the known formats are {', '.join(format_names())}"
        )
    return parse_format(name)


def set_format(descriptor: ModelDescriptor, name: str) -> None:
    """Name format ``name`` in ``descriptor``: ``format``, and ``model_type`` for a built-in."""
    name = parse_format(name)
    descriptor.format = name
    descriptor.model_type = BUILTIN_TYPES.get(name, ModelType.MODEL_TYPE_UNSPECIFIED)


def format_name(model_type: int | str) -> str:
    """A format given as a ``ModelType`` value or as a name, as a registered name."""
    if isinstance(model_type, str):
        return parse_format(model_type)
    name = _BUILTIN_NAMES.get(model_type)
    if name is None:
        raise UnknownModelType(f"no format for model type {model_type}")
    return parse_format(name)


def detect_format(path: Path) -> str | None:
    """The format a file or directory looks like (by suffix, or by marker file inside), else None.

    Imports the format modules (not their frameworks) to read their
    ``suffixes`` and ``directory_marker``.
    """
    path = Path(path)
    for name in format_names():
        cls = format_class(name)
        if path.is_file() and path.suffix.lower() in cls.suffixes:
            return name
        if path.is_dir() and cls.directory_marker and any(path.rglob(cls.directory_marker)):
            return name
    return None
