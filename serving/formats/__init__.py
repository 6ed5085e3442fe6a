"""Model factories: one per ``ModelType``, resolved lazily from the descriptor.

Framework imports (TensorFlow, pypmml, onnxruntime) happen only when a model of
that type is first built, so ``serving`` itself stays light to import.
"""

from __future__ import annotations

import gzip
import importlib
import io
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlparse

from google.protobuf.message import DecodeError

from serving.core.model import Model, ModelDescriptor, ModelType, sha256_hex
from serving.errors import (
    ChecksumMismatch,
    CorruptModelError,
    ModelLoadError,
    ModelLocationError,
    ServingError,
    UnknownModelType,
)
from serving.settings import environment

#: ModelType -> "module:Class"; the module is imported on first use only.
_FACTORIES: dict[int, str] = {
    ModelType.TENSORFLOW: "serving.formats.tensorflow_graph:TensorFlowGraphModel",
    ModelType.TENSORFLOW_SAVED: "serving.formats.tensorflow_saved:TensorFlowSavedModel",
    ModelType.PMML: "serving.formats.pmml.model:PmmlModel",
    ModelType.ONNX: "serving.formats.onnx:OnnxModel",
}

#: Names accepted on the command line, e.g. ``--type tensorflow_saved``.
TYPE_NAMES: dict[str, int] = {
    "tensorflow": ModelType.TENSORFLOW,
    "tensorflow_saved": ModelType.TENSORFLOW_SAVED,
    "pmml": ModelType.PMML,
    "onnx": ModelType.ONNX,
}

#: The variable naming the model roots (read through ``serving.settings.environment``).
MODEL_ROOTS_ENV = "MODELSERVING_MODEL_ROOTS"


def parse_model_type(name: str) -> int:
    """Map a CLI type name (any case) to a ``ModelType`` value."""
    try:
        return TYPE_NAMES[name.lower()]
    except KeyError:
        raise UnknownModelType(f"unknown model type {name!r}; choose one of {', '.join(TYPE_NAMES)}") from None


def default_model_roots() -> list[Path]:
    """Roots a by-reference model may live under: ``$MODELSERVING_MODEL_ROOTS`` or the cwd."""
    return environment().model_root_paths()


def factory_for(model_type: int) -> type[Model]:
    """The ``Model`` subclass for ``model_type``; imports its module on first use."""
    target = _FACTORIES.get(model_type)
    if target is None:
        label = ModelType.Name(model_type) if model_type in ModelType.values() else str(model_type)
        raise UnknownModelType(f"no factory for model type {label}")
    module_name, class_name = target.split(":")
    return getattr(importlib.import_module(module_name), class_name)


def load_model(descriptor: ModelDescriptor, model_roots: Sequence[Path] | None = None) -> Model:
    """Build a ready-to-score model from a descriptor.

    Inline ``data`` is used as is (and checked against ``sha256`` when set); a
    ``location`` must resolve under one of ``model_roots``.

    Raises:
        ModelLoadError: or a subclass, with the reason; never a framework error.
    """
    cls = factory_for(descriptor.model_type)
    artifact = resolve_artifact(descriptor, model_roots)
    try:
        return cls(descriptor, artifact)
    except ServingError:
        raise
    except Exception as exc:  # frameworks raise anything on bad bytes
        raise CorruptModelError(
            f"cannot load {ModelType.Name(descriptor.model_type)} model {descriptor.name!r}: "
            f"{type(exc).__name__}: {_first_line(exc)}"
        ) from exc


def restore(state_bytes: bytes, model_roots: Sequence[Path] | None = None) -> Model:
    """Rebuild a model from ``Model.to_bytes()`` output (the form kept in Flink state)."""
    return load_model(parse_descriptor(state_bytes), model_roots)


def parse_descriptor(data: bytes) -> ModelDescriptor:
    """Decode and sanity-check ``ModelDescriptor`` bytes.

    Raises:
        CorruptModelError: the bytes do not parse or carry no usable content.
        UnknownModelType: the model type is not one we serve.
    """
    if not data:
        raise CorruptModelError("model message is empty")
    descriptor = ModelDescriptor()
    try:
        descriptor.ParseFromString(data)
    except DecodeError as exc:
        raise CorruptModelError(f"model message is not a ModelDescriptor: {exc}") from exc
    if descriptor.model_type not in _FACTORIES:
        raise UnknownModelType(f"model message has unknown model type {descriptor.model_type}")
    if not descriptor.name or not descriptor.data_type:
        raise CorruptModelError("model message lacks a name or a data type")
    if descriptor.WhichOneof("content") is None:
        raise CorruptModelError(f"model {descriptor.name!r} carries neither data nor a location")
    return descriptor


def resolve_artifact(descriptor: ModelDescriptor, model_roots: Sequence[Path] | None = None) -> bytes:
    """The artifact bytes of a descriptor: inline data, or the file/dir at its location."""
    content = descriptor.WhichOneof("content")
    if content == "data":
        data = descriptor.data
        if not data:
            raise CorruptModelError(f"model {descriptor.name!r} has empty data")
        if descriptor.sha256 and sha256_hex(data) != descriptor.sha256.lower():
            raise ChecksumMismatch(f"model {descriptor.name!r}: artifact SHA-256 does not match the descriptor")
        return data
    if content == "location":
        path = _checked_location(descriptor.location, model_roots)
        if path.is_dir():
            return archive_directory(path)
        data = path.read_bytes()
        if not data:
            raise CorruptModelError(f"model file {path} is empty")
        if descriptor.sha256 and sha256_hex(data) != descriptor.sha256.lower():
            raise ChecksumMismatch(f"model file {path}: SHA-256 does not match the descriptor")
        return data
    raise CorruptModelError(f"model {descriptor.name!r} carries neither data nor a location")


def _checked_location(location: str, model_roots: Sequence[Path] | None) -> Path:
    parsed = urlparse(location)
    if parsed.scheme not in ("", "file"):
        raise ModelLocationError(f"unsupported model location scheme {parsed.scheme!r} in {location!r}")
    path = Path(parsed.path if parsed.scheme == "file" else location).resolve()
    roots = [Path(r).resolve() for r in (model_roots if model_roots is not None else default_model_roots())]
    if not any(path.is_relative_to(root) for root in roots):
        shown = ", ".join(str(r) for r in roots) or "(none)"
        raise ModelLocationError(f"model location {path} is outside the model roots {shown}")
    if not path.exists():
        raise ModelLocationError(f"model location {path} does not exist")
    return path


def archive_directory(path: Path) -> bytes:
    """A reproducible tar.gz of a directory (sorted entries, zero mtimes)."""
    buffer = io.BytesIO()

    def _normalise(info: tarfile.TarInfo) -> tarfile.TarInfo:
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    # gzip stamps the current time in its header unless told otherwise.
    with (
        gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=6, mtime=0) as compressed,
        tarfile.open(fileobj=compressed, mode="w") as tar,
    ):
        for item in sorted(path.rglob("*")):
            tar.add(item, arcname=str(item.relative_to(path)), recursive=False, filter=_normalise)
    return buffer.getvalue()


def descriptor_from_path(
    path: str | Path,
    model_type: int,
    *,
    data_type: str = "wine",
    name: str | None = None,
    version: str | None = None,
    description: str = "",
    by_reference: bool = False,
    metadata: dict[str, str] | None = None,
) -> ModelDescriptor:
    """Describe a model file (or SavedModel directory) for publishing or local use.

    Inline descriptors carry the bytes (a SavedModel directory is archived);
    ``by_reference`` ones carry the absolute path. The default version is the
    first 12 hex digits of the artifact's SHA-256, so equal files get equal versions.
    """
    path = Path(path)
    if not path.exists():
        raise ModelLocationError(f"model path {path} does not exist")
    if path.is_dir():
        if model_type != ModelType.TENSORFLOW_SAVED:
            raise CorruptModelError(f"{path} is a directory; only tensorflow_saved models are directories")
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
        model_type=model_type,
        version=version or digest[:12],
        created_at=int(time.time() * 1000),
        metadata=metadata or {},
    )
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


__all__ = [
    "ModelLoadError",
    "TYPE_NAMES",
    "archive_directory",
    "default_model_roots",
    "descriptor_from_path",
    "factory_for",
    "load_model",
    "parse_descriptor",
    "parse_model_type",
    "resolve_artifact",
    "restore",
]
