"""``modelserving publish ensemble FILE.json``: an ensemble descriptor from a user's friendly JSON file.

The file names members by model file (and ``type``) or by model-server URL;
this builds the format's document (:mod:`.document`) with the files inline::

    {
      "name": "iris-vote", "data_type": "iris", "budget_ms": 200, "mode": "wallclock",
      "decider": {"name": "plurality", "params": {"quorum": 2}},
      "members": [
        {"path": "iris-lr.onnx", "type": "onnx", "name": "lr"},
        {"location": "http://127.0.0.1:8080", "name": "iris-remote", "metadata": {"model_name": "iris"}}
      ]
    }

``decider`` may be just a name; a member's ``priority`` defaults to its
place in the list (1 first), ``name`` and ``version`` to what
``publish model`` would choose, and metadata values may be numbers.
Relative paths are relative to the file.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from serving.core.model import ModelDescriptor, sha256_hex
from serving.errors import ConfigError, ServingError
from serving.formats.ensemble.document import encode, parse_document

_TOP = {"name", "version", "description", "data_type", "budget_ms", "mode", "decider", "members"}
_MEMBER = {"path", "type", "location", "name", "version", "priority", "metadata", "description"}


def ensemble_descriptor(path: str | Path) -> ModelDescriptor:
    """The ensemble descriptor ``publish ensemble`` sends for the file at ``path``; nothing is connected to.

    The version defaults to 12 hex digits of the document's SHA-256.

    Raises:
        ConfigError: the file is missing, not JSON, or a field is wrong (one line naming it).
        ModelLoadError: a member's file is missing or of no known format; a location off the allow-list.
    """
    from serving.formats.registry import set_format

    path = Path(path)
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read ensemble file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ConfigError(f"ensemble file {path} is not JSON: {' '.join(str(exc).split())}") from exc
    if not isinstance(body, dict):
        raise ConfigError(f"ensemble file {path}: must be a JSON object")
    _no_extra(body, _TOP, f"ensemble file {path}")
    name, data_type = _text(body, "name", path), _text(body, "data_type", path)
    decider = body.get("decider")
    if isinstance(decider, str):
        decider = {"name": decider, "params": {}}
    members = body.get("members")
    if not isinstance(members, list) or not members:
        raise ConfigError(f"ensemble file {path}: members must be a non-empty list")
    document = {
        "data_type": data_type,
        "budget_ms": body.get("budget_ms"),
        "mode": body.get("mode", "wallclock"),
        "decider": decider,
        "members": [_member(m, i, data_type, path) for i, m in enumerate(members)],
    }
    artifact = json.dumps(document, sort_keys=True, separators=(",", ":")).encode()
    parse_document(artifact, data_type)  # every rule of the format, before anything is sent
    descriptor = ModelDescriptor(
        name=name,
        description=str(body.get("description", "")),
        data_type=data_type,
        version=str(body.get("version") or sha256_hex(artifact)[:12]),
        created_at=int(time.time() * 1000),
    )
    set_format(descriptor, "ensemble")
    descriptor.data = artifact
    descriptor.sha256 = sha256_hex(artifact)
    return descriptor


def _member(entry: Any, i: int, data_type: str, path: Path) -> dict[str, Any]:
    """A member entry of the format's document (the file inline, or the server's checked URL)."""
    from serving.formats import descriptor_from_path
    from serving.formats.remote.oip import remote_descriptor

    where = f"ensemble file {path}: members[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{where} must be an object")
    _no_extra(entry, _MEMBER, where)
    metadata = entry.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ConfigError(f"{where}.metadata must be an object")
    metadata = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    has_path, has_location = "path" in entry, "location" in entry
    if has_path == has_location:
        raise ConfigError(f"{where} needs either path (a model file, with type) or location (a model server URL)")
    common = {"name": entry.get("name"), "version": entry.get("version"), "metadata": metadata}
    try:
        if has_location:
            if entry.get("type", "oip") != "oip":
                raise ConfigError(f"{where}: a location is for type oip, not {entry['type']!r}")
            made = remote_descriptor(str(entry["location"]), data_type=data_type, **common)
            content = {"location": made.location}
        else:
            if "type" not in entry:
                raise ConfigError(f"{where} needs the model file's type (e.g. onnx, pmml)")
            file = Path(str(entry["path"]))
            made = descriptor_from_path(file if file.is_absolute() else path.parent / file, str(entry["type"]),
                                        data_type=data_type, **common)  # fmt: skip
            content = {"data_base64": encode(made.data)}
    except ServingError as exc:
        raise type(exc)(f"{where}: {exc}") from exc
    descriptor = {"name": made.name, "version": made.version, "format": made.format, "metadata": dict(made.metadata)}
    return {"priority": entry.get("priority", i + 1), "descriptor": {**descriptor, **content}}


def _text(body: dict[str, Any], key: str, path: Path) -> str:
    value = body.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"ensemble file {path}: {key} must be a non-empty string")
    return value.strip()


def _no_extra(body: dict[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise ConfigError(f"{where}: unknown field {extra[0]!r} (allowed: {', '.join(sorted(allowed))})")
