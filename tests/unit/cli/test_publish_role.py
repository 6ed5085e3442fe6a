"""``publish model --role R [--weight W]``: the role travels in the descriptor's metadata; the champion adds nothing.

The publishing itself is replaced by a fake that keeps the descriptor; a signed
descriptor is checked with the job's own verification (``check_signature``).
"""

from __future__ import annotations

import pytest

from serving.cli import main
from serving.governance.signing import check_signature, generate_keys, trusted_keys
from serving.kafka import clients
from serving.kafka.providers import models as providers
from serving.paths import PROJECT_ROOT

MODEL = PROJECT_ROOT / "serving/reference/models/winequalityDecisionTreeClassification.pmml"
BROKER = ["--bootstrap-servers", "127.0.0.1:9"]


@pytest.fixture
def published(monkeypatch):
    """The descriptors ``publish model`` would have sent, without a broker."""
    sent = []
    monkeypatch.setattr(clients, "check_reachable", lambda settings, timeout=5.0: None)
    monkeypatch.setattr(providers, "publish_descriptor", lambda settings, descriptor: sent.append(descriptor))
    return sent


def publish(*flags: str) -> int:
    return main(["publish", "model", str(MODEL), "--type", "pmml", "--version", "v9", *flags, *BROKER])


@pytest.mark.parametrize(
    "flags, metadata",
    [
        (["--role", "canary", "--weight", "0.1"], {"role": "canary", "weight_bp": "1000"}),
        (["--role", "canary"], {"role": "canary"}),
        (["--role", "shadow"], {"role": "shadow"}),
        (["--role", "decoy", "--metadata", "owner=ml"], {"role": "decoy", "owner": "ml"}),
        (["--role", "champion"], {}),
        ([], {}),
    ],
)
def test_the_role_is_descriptor_metadata(published, flags, metadata):
    assert publish(*flags) == 0
    (descriptor,) = published
    assert dict(descriptor.metadata) == metadata
    assert descriptor.version == "v9"


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--weight", "0.1"], "--weight is for --role canary only"),
        (["--role", "shadow", "--weight", "0.1"], "--weight is for --role canary only"),
        (["--role", "king"], "--role must be one of champion, shadow, canary, decoy, got 'king'"),
        (["--role", "canary", "--weight", "2"], "--weight must lie between 0 and 1"),
        (["--role", "canary", "--metadata", "role=shadow"], "give the role with --role and --weight"),
    ],
)
def test_bad_role_flags_are_one_line_and_nothing_is_sent(published, capsys, flags, message):
    assert publish(*flags) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modelserving publish: error: ") and message in err[0], err
    assert published == []


def test_a_signed_canary_verifies_as_the_job_checks_it(published, tmp_path):
    private, public = generate_keys(tmp_path, "ops")
    assert publish("--role", "canary", "--weight", "0.25", "--sign", str(private)) == 0
    (descriptor,) = published
    assert dict(descriptor.metadata) == {"role": "canary", "weight_bp": "2500"}
    keys = trusted_keys([public.read_text()])
    assert check_signature(descriptor, bytes(descriptor.data), keys, required=True) == next(iter(keys))
