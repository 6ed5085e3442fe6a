"""Model formats: building a ready-to-score model from a descriptor, and describing a model file.

Which class builds a model is up to :mod:`serving.formats.registry` (the
``modelserving.formats`` entry points); the class and its framework are
imported when the first model of that format is built, so ``serving`` itself
stays light to import. :mod:`serving.formats.artifacts` finds the bytes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from google.protobuf.message import DecodeError

from serving.core.model import Model, ModelDescriptor, sha256_hex
from serving.errors import CorruptModelError, ModelLocationError, ServingError
from serving.formats.artifacts import archive_directory, resolve_artifact
from serving.formats.registry import format_class, format_name, format_of, set_format

if TYPE_CHECKING:
    from serving.records.schema import Column


def load_model(
    descriptor: ModelDescriptor, model_roots: Sequence[Path] | None = None, columns: Sequence[Column] | None = None
) -> Model:
    """Build a ready-to-score model from a descriptor, bound to its data type's feature ``columns``.

    Inline ``data`` is used as is (and checked against ``sha256`` when set); a
    ``location`` must resolve under one of ``model_roots``. ``columns`` None:
    the data type's bundled (or legacy) schema.

    Raises:
        ModelLoadError: or a subclass, with the reason; never a framework error.
    """
    name = format_of(descriptor)
    cls = format_class(name)
    # A remote format (oip) has no file: its location is a server, and the format names its own artifact.
    own_artifact = getattr(cls, "own_artifact", None)
    if own_artifact is not None and descriptor.WhichOneof("content") == "location":
        artifact = own_artifact(descriptor)
    else:
        artifact = resolve_artifact(descriptor, model_roots)
    try:
        return cls(descriptor, artifact) if columns is None else cls(descriptor, artifact, columns)
    except ServingError:
        raise
    except Exception as exc:  # frameworks raise anything on bad bytes
        raise CorruptModelError(
            f"cannot load {name} model {descriptor.name!r}: {type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def restore(
    state_bytes: bytes, model_roots: Sequence[Path] | None = None, columns: Sequence[Column] | None = None
) -> Model:
    """Rebuild a model from ``Model.to_bytes()`` output (the form kept in Flink state)."""
    return load_model(parse_descriptor(state_bytes), model_roots, columns)


def parse_descriptor(data: bytes) -> ModelDescriptor:
    """Decode and sanity-check ``ModelDescriptor`` bytes.

    Raises:
        CorruptModelError: the bytes do not parse or carry no usable content.
        UnknownModelType: the descriptor names no registered format.
    """
    if not data:
        raise CorruptModelError("model message is empty")
    descriptor = ModelDescriptor()
    try:
        descriptor.ParseFromString(data)
    except (DecodeError, UnicodeDecodeError) as exc:  # the pure-Python protobuf raises the latter on bad UTF-8
        raise CorruptModelError(f"model message is not a ModelDescriptor: {exc}") from exc
    format_of(descriptor)
    if not descriptor.name or not descriptor.data_type:
        raise CorruptModelError("model message lacks a name or a data type")
    if descriptor.WhichOneof("content") is None:
        raise CorruptModelError(f"model {descriptor.name!r} carries neither data nor a location")
    return descriptor


def descriptor_from_path(
    path: str | Path,
    model_type: int | str,
    *,
    data_type: str = "wine",
    name: str | None = None,
    version: str | None = None,
    description: str = "",
    by_reference: bool = False,
    metadata: dict[str, str] | None = None,
) -> ModelDescriptor:
    """Describe a model file (or model directory, e.g. a SavedModel) for publishing or local use.

    ``model_type`` is a format name (``"pmml"``, or a plug-in's) or a built-in
    ``ModelType`` value. Inline descriptors carry the bytes (a directory is
    archived); ``by_reference`` ones carry the absolute path. The default
    version is the first 12 hex digits of the artifact's SHA-256, so equal
    files get equal versions.
    """
    path = Path(path)
    fmt = format_name(model_type)
    if not path.exists():
        raise ModelLocationError(f"model path {path} does not exist")
    if path.is_dir():
        if not format_class(fmt).directory_marker:
            raise CorruptModelError(f"{path} is a directory; {fmt} models are files")
        artifact = archive_directory(path)
    else:
        artifact = path.read_bytes()
    if not artifact:
        raise CorruptModelError(f"model file {path} is empty")
    digest = sha256_hex(artifact)
    descriptor = ModelDescriptor(
        name=name or path.stem,
        description=description,
        data_type=data_type,
        version=version or digest[:12],
        created_at=int(time.time() * 1000),
        metadata=metadata or {},
    )
    set_format(descriptor, fmt)
    if by_reference:
        descriptor.location = str(path.resolve())
        if path.is_file():
            descriptor.sha256 = digest
    else:
        descriptor.data = artifact
        descriptor.sha256 = digest
    return descriptor


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else ""
