"""Signed models: an Ed25519 signature over a canonical manifest, verified by the job with public keys only.

The protobuf bytes of a descriptor are not canonical, so the signature covers
a manifest instead: the sorted-key, compact JSON of the model's ``name``,
``version``, ``data_type``, ``format``, the artifact's ``sha256`` and ``size``,
and its ``location`` ("" when inline). A descriptor carries the signature and
the id of its key (``signing_key``: the first 16 hex digits of the SHA-256 of
the raw public key). The job verifies after loading, against the artifact it
actually loaded, so a swapped file or tampered bytes fail too.

Policy (:func:`check_signature`): a signed model must verify against a
trusted key; an unsigned one is accepted unless signatures are required.
Each refusal has its own reason: ``unsigned model``, ``unknown signing key``,
``bad signature``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path

from serving.core.model import ModelDescriptor
from serving.errors import ConfigError, ModelLoadError


class SignatureError(ModelLoadError):
    """A model's signature does not make it acceptable (see the subclasses' reasons)."""

    reason = "bad signature"


class UnsignedModel(SignatureError):
    """Signatures are required and the model carries none."""

    reason = "unsigned model"


class UnknownSigningKey(SignatureError):
    """The model is signed with a key the job does not trust."""

    reason = "unknown signing key"


def manifest(descriptor: ModelDescriptor, artifact: bytes) -> bytes:
    """The canonical bytes a model's signature covers (see the module docstring)."""
    from serving.formats.registry import format_of

    content = descriptor.WhichOneof("content")
    fields = {
        "name": descriptor.name,
        "version": descriptor.version,
        "data_type": descriptor.data_type,
        "format": format_of(descriptor),
        "sha256": hashlib.sha256(artifact).hexdigest(),
        "size": len(artifact),
        "location": descriptor.location if content == "location" else "",
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()


def key_id(public_key) -> str:
    """The id of an Ed25519 public key: 16 hex digits of the SHA-256 of its raw bytes."""
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return hashlib.sha256(public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)).hexdigest()[:16]


def generate_keys(directory: Path, name: str) -> tuple[Path, Path]:
    """Write a new key pair: ``NAME.key`` (private, PKCS#8 PEM, mode 0600) and ``NAME.pub`` (public, PEM).

    Raises:
        ConfigError: either file exists already (a key is never overwritten).
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    directory = Path(directory)
    private_path, public_path = directory / f"{name}.key", directory / f"{name}.pub"
    for path in (private_path, public_path):
        if path.exists():
            raise ConfigError(f"{path} exists: a key is never overwritten")
    directory.mkdir(parents=True, exist_ok=True)
    private = Ed25519PrivateKey.generate()
    private_path.touch(mode=0o600)
    private_path.write_bytes(private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    public_path.write_bytes(private.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))
    return private_path, public_path


def sign(descriptor: ModelDescriptor, artifact: bytes, private_key_pem: bytes) -> None:
    """Sign ``descriptor`` (whose artifact is ``artifact``) in place: set ``signature`` and ``signing_key``.

    Raises:
        ConfigError: the key is not an Ed25519 private key in PEM.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        private = load_pem_private_key(private_key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"the signing key is not a PEM private key without a password: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise ConfigError("the signing key is not an Ed25519 key (make one with `modelserving keys generate`)")
    descriptor.signature = private.sign(manifest(descriptor, artifact))
    descriptor.signing_key = key_id(private.public_key())


def sign_with_file(descriptor: ModelDescriptor, artifact: bytes, key_file: Path) -> None:
    """:func:`sign` with the private key in ``key_file``.

    Raises:
        ConfigError: the file cannot be read, or holds no Ed25519 private key.
    """
    try:
        key = Path(key_file).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read signing key {key_file}: {exc.strerror}") from exc
    sign(descriptor, artifact, key)


def trusted_keys(pems: Iterable[str]) -> dict[str, object]:
    """Public keys by id, from PEM texts.

    Raises:
        ConfigError: a text is not an Ed25519 public key in PEM.
    """
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    keys = {}
    for pem in pems:
        try:
            key = load_pem_public_key(pem.encode())
        except ValueError as exc:
            raise ConfigError(f"a trusted key is not a PEM public key: {exc}") from exc
        if not isinstance(key, Ed25519PublicKey):
            raise ConfigError("a trusted key is not an Ed25519 public key")
        keys[key_id(key)] = key
    return keys


def read_public_keys(directory: Path) -> tuple[str, ...]:
    """The PEM texts of every ``*.pub`` file in ``directory``, in name order.

    Raises:
        ConfigError: the directory cannot be read or holds no ``.pub`` file.
    """
    try:
        paths = sorted(Path(directory).glob("*.pub"))
        texts = tuple(p.read_text() for p in paths)
    except OSError as exc:
        raise ConfigError(f"cannot read trusted keys in {directory}: {exc.strerror}") from exc
    if not texts:
        raise ConfigError(f"{directory} holds no public key (*.pub)")
    trusted_keys(texts)  # refuse a bad key at start, not at the first model
    return texts


def check_signature(descriptor: ModelDescriptor, artifact: bytes, keys: Mapping[str, object], *, required: bool) -> str:
    """Apply the signature policy to a loaded model; return the signing key id ("" when unsigned and allowed).

    Raises:
        UnsignedModel: no signature while ``required``.
        UnknownSigningKey: signed with a key not in ``keys``.
        SignatureError: the signature does not verify (tampered descriptor or artifact).
    """
    from cryptography.exceptions import InvalidSignature

    what = f"model {descriptor.name!r} version {descriptor.version}"
    if not descriptor.signature:
        if required:
            raise UnsignedModel(f"{what} is not signed, and this job requires signatures")
        return ""
    key = keys.get(descriptor.signing_key)
    if key is None:
        raise UnknownSigningKey(
            f"{what} is signed with key {descriptor.signing_key or '(none)'}, which this job does not trust"
        )
    try:
        key.verify(bytes(descriptor.signature), manifest(descriptor, artifact))  # type: ignore[attr-defined]
    except InvalidSignature as exc:
        raise SignatureError(
            f"{what}: the signature of key {descriptor.signing_key} does not match its name, version, data type, "
            "format or artifact (tampered?)"
        ) from exc
    return descriptor.signing_key
