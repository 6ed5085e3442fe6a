"""Signed models: Ed25519 over the canonical manifest; each way to fail has its own reason, and admission keeps it."""

from __future__ import annotations

import stat
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from serving.core.admission import ModelCache
from serving.errors import ConfigError
from serving.formats import descriptor_from_path
from serving.governance.signing import (
    SignatureError,
    UnknownSigningKey,
    UnsignedModel,
    check_signature,
    generate_keys,
    manifest,
    read_public_keys,
    sign,
    trusted_keys,
)
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import bundled_schemas, wine
from serving.settings import ServingOptions
from tests.support.reference import PMML_LINEAR


@pytest.fixture
def keys(tmp_path):
    private, public = generate_keys(tmp_path, "publisher")
    return private.read_bytes(), public.read_text()


def _signed(private_pem: bytes, version: str = "1"):
    descriptor = descriptor_from_path(PMML_LINEAR, "pmml", version=version)
    sign(descriptor, bytes(descriptor.data), private_pem)
    return descriptor


def test_a_signed_model_verifies_and_names_its_key(keys):
    private, public = keys
    descriptor = _signed(private)
    known = trusted_keys([public])
    assert check_signature(descriptor, bytes(descriptor.data), known, required=True) == descriptor.signing_key
    assert list(known) == [descriptor.signing_key] and len(descriptor.signing_key) == 16


def test_the_manifest_is_sorted_compact_json_of_the_seven_fields(keys):
    descriptor = descriptor_from_path(PMML_LINEAR, "pmml", version="7", name="lin", data_type="wine")
    text = manifest(descriptor, b"abc").decode()
    assert text == (
        '{"data_type":"wine","format":"pmml","location":"","name":"lin",'
        '"sha256":"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad","size":3,"version":"7"}'
    )


@pytest.mark.parametrize("field, value", [("version", "2"), ("name", "other"), ("data_type", "wine-white")])
def test_a_changed_name_version_or_data_type_fails_verification(keys, field, value):
    private, public = keys
    descriptor = _signed(private)
    setattr(descriptor, field, value)
    with pytest.raises(SignatureError, match="tampered") as raised:
        check_signature(descriptor, bytes(descriptor.data), trusted_keys([public]), required=False)
    assert raised.value.reason == "bad signature"


def test_a_changed_artifact_fails_verification(keys):
    private, public = keys
    descriptor = _signed(private)
    with pytest.raises(SignatureError):
        check_signature(descriptor, bytes(descriptor.data) + b" ", trusted_keys([public]), required=False)


def test_an_unknown_key_and_a_missing_signature_have_their_own_reasons(keys):
    _, public = keys
    other = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    stranger = _signed(other)
    with pytest.raises(UnknownSigningKey) as raised:
        check_signature(stranger, bytes(stranger.data), trusted_keys([public]), required=False)
    assert raised.value.reason == "unknown signing key"
    unsigned = descriptor_from_path(PMML_LINEAR, "pmml")
    with pytest.raises(UnsignedModel) as raised:
        check_signature(unsigned, bytes(unsigned.data), trusted_keys([public]), required=True)
    assert raised.value.reason == "unsigned model"
    assert check_signature(unsigned, bytes(unsigned.data), trusted_keys([public]), required=False) == ""


def test_admission_rejects_each_bad_model_with_its_reason_and_accepts_the_signed_one(keys):
    private, public = keys
    schema = next(s for s in bundled_schemas() if s.data_type == wine.DATA_TYPE)
    cache = ModelCache(options=ServingOptions(trusted_keys=(public,), require_signatures=True))
    good = cache.admit(_signed(private).SerializeToString(), schema)
    assert good.event.kind == ModelEvent.ACCEPTED and good.model.signed_by
    tampered = _signed(private, "2")
    tampered.version = "3"
    other = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    cases = {
        "bad signature": tampered,
        "unknown signing key": _signed(other, "4"),
        "unsigned model": descriptor_from_path(PMML_LINEAR, "pmml", version="5"),
    }
    for reason, descriptor in cases.items():
        admission = cache.admit(descriptor.SerializeToString(), schema)
        assert admission.event.kind == ModelEvent.REJECTED and admission.event.reason.startswith(reason)
        assert admission.dead_letter.reason == reason
    cache.close()


def test_keys_are_written_private_and_never_overwritten(tmp_path):
    private, public = generate_keys(tmp_path, "k")
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert b"PRIVATE KEY" in private.read_bytes() and "PUBLIC KEY" in public.read_text()
    with pytest.raises(ConfigError, match="never overwritten"):
        generate_keys(tmp_path, "k")
    assert read_public_keys(tmp_path) == (public.read_text(),)


def test_signatures_required_without_keys_is_a_config_error():
    with pytest.raises(ValueError, match="needs trusted keys"):
        ServingOptions(require_signatures=True)


def test_a_bad_trusted_key_is_refused_at_start(tmp_path):
    (tmp_path / "bad.pub").write_text("not a key")
    with pytest.raises(ConfigError, match="not a PEM public key"):
        read_public_keys(tmp_path)


def test_the_cli_generates_keys_and_a_bad_signing_key_is_one_line(tmp_path):
    cli = [sys.executable, "-m", "serving.cli"]
    done = subprocess.run([*cli, "keys", "generate", "--out", str(tmp_path)], capture_output=True, text=True)
    assert done.returncode == 0 and "key id" in done.stdout
    (tmp_path / "junk.key").write_text("junk")
    command = [*cli, "publish", "model", str(PMML_LINEAR), "--type", "pmml", "--sign", str(tmp_path / "junk.key"),
               "--bootstrap-servers", "127.0.0.1:9"]  # fmt: skip
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a PEM private key" in lines[0], proc.stderr
