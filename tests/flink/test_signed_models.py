"""Signed models in both jobs at parallelism 2: only a model signed by a trusted key serves; nothing is lost.

Model A (signed) serves from T0. Then come, each meant to take over: B with
its version changed after signing (tampered), C signed by a key the job does
not trust, D not signed at all. Each is rejected with its own reason, and A
scores every record.
"""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from serving.formats import descriptor_from_path
from serving.governance.signing import generate_keys, sign
from serving.testing import REFERENCE_MODELS, T0
from serving.testing import wine_records as records
from tests.support.flink import run_bounded

pytestmark = pytest.mark.flink


def _model(kind: str, version: str, created_at: int, key: bytes | None):
    path, fmt = REFERENCE_MODELS[kind]
    descriptor = descriptor_from_path(path, fmt, version=version, name=kind)
    descriptor.created_at = created_at
    if key is not None:
        sign(descriptor, bytes(descriptor.data), key)
    return descriptor


@pytest.mark.parametrize("job", ["keyed", "partitioned"])
def test_only_models_signed_by_a_trusted_key_serve(tmp_path, wine_data, job):
    private, public = generate_keys(tmp_path / "keys", "publisher")
    trusted = private.read_bytes()
    stranger = Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    tampered = _model("tf", "B", T0 + 300, trusted)
    tampered.version = "B2"  # after signing: the signature no longer covers what is published
    models = [
        _model("linear", "A", T0, trusted).SerializeToString(),
        tampered.SerializeToString(),
        _model("tf", "C", T0 + 600, stranger).SerializeToString(),
        _model("tf", "D", T0 + 900, None).SerializeToString(),
    ]
    data = records(wine_data.features)
    outputs = run_bounded(
        tmp_path / "out", job, 2, data, models, trusted_keys=(public.read_text(),), require_signatures=True
    )
    rejected = {e["version"]: e["reason"].split(":")[0] for e in outputs.model_events if e["kind"] == "REJECTED"}
    assert rejected == {"B2": "bad signature", "C": "unknown signing key", "D": "unsigned model"}
    assert {e["version"] for e in outputs.model_events if e["kind"] == "ACCEPTED"} == {"A"}
    ids = [r["record_id"] for r in outputs.results]
    assert sorted(ids, key=int) == [str(i) for i in range(len(data))]
    assert {r["model_version"] for r in outputs.results} == {"A"}
    letters = {d["record_id"]: d["reason"] for d in outputs.dead_letters if d["source"] == "model"}
    assert letters == rejected
