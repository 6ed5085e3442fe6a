"""Model descriptors, broken every way: ``parse_descriptor`` raises only typed errors, admission only rejects.

``serving.formats.parse_descriptor`` decodes a model message;
``serving.core.admission.ModelCache.admit`` decodes, builds and probes one
and must answer every message with an ``Admission``: garbage is rejected
with a dead letter, never raised. Mutated TensorFlow graphs run in a
process of their own (:mod:`tests.unit.fuzz.graphs`): TensorFlow aborts the
process on some malformed graphs instead of raising.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.core.admission import Admission, ModelCache
from serving.core.model import ModelDescriptor
from serving.formats import parse_descriptor
from serving.formats.registry import format_names
from serving.pb.model_event_pb2 import ModelEvent
from serving.settings import ServingOptions
from serving.testing import T0, model_message
from tests.unit.fuzz.mutations import SCALE, doubles, exhaustive, expect_typed, fuzz_settings, mutated
from tests.unit.fuzz.seeds import SENSOR, WHITE, WINE, check_dead_letter

REPO = Path(__file__).resolve().parents[3]
OPTIONS = ServingOptions(dead_letter_max_payload_bytes=512)
LINEAR = model_message("linear", "1", T0)
TREE = model_message("tree", "1", T0)
#: A by-reference descriptor: every scalar field set, small enough to mutate exhaustively.
BY_REFERENCE = ModelDescriptor(
    name="linear",
    description="by reference",
    data_type="wine",
    model_type=3,
    location="/nowhere/model.pmml",
    version="7",
    created_at=T0,
    sha256="ab" * 32,
    metadata={"feature_names": "a,b"},
    format="pmml",
    signature=b"\x01\x02",
    signing_key="k",
).SerializeToString()
SCHEMAS = st.sampled_from([WINE, WHITE, SENSOR, None])


def check_admission(admission: Admission, payload: bytes) -> None:
    """An answer, never an exception: accepted with a model, or rejected with a reason and a dead letter."""
    assert isinstance(admission, Admission)
    if admission.accepted:
        assert admission.model is not None and admission.dead_letter is None
        return
    assert admission.event.kind == ModelEvent.REJECTED and admission.event.reason
    check_dead_letter(admission.dead_letter, payload, OPTIONS.dead_letter_max_payload_bytes)
    assert admission.dead_letter.source == "model"


@pytest.fixture(scope="module")
def cache():
    models = ModelCache(options=OPTIONS)
    yield models
    models.close()


def admit(cache: ModelCache, payload: bytes, schema=WINE) -> Admission:
    try:
        return cache.admit(payload, schema)
    except Exception as exc:
        pytest.fail(f"ModelCache.admit raised {type(exc).__name__}: {exc}")


def with_artifact(seed: bytes, artifact: bytes, fmt: str | None = None) -> bytes:
    """``seed``'s descriptor with another artifact (its SHA-256 set to match, so the bytes reach the loader)."""
    descriptor = ModelDescriptor.FromString(seed)
    descriptor.data, descriptor.sha256 = artifact, hashlib.sha256(artifact).hexdigest()
    if fmt is not None:
        descriptor.format = fmt
    return descriptor.SerializeToString()


def test_every_truncation_and_single_bit_flip_of_a_descriptor_is_a_descriptor_or_a_typed_error(cache):
    """All prefixes and one-bit flips of a by-reference descriptor: parsed, or a ``ServingError``; admission rejects."""
    for payload in exhaustive(BY_REFERENCE):
        expect_typed(parse_descriptor, payload)
        check_admission(admit(cache, payload), payload)


@fuzz_settings(200)
@given(payload=mutated(st.sampled_from([LINEAR, TREE, BY_REFERENCE]), ModelDescriptor.DESCRIPTOR), schema=SCHEMAS)
def test_a_mutated_model_message_is_parsed_or_a_typed_error_and_admission_answers_it(cache, payload, schema):
    """Mutated model messages (huge lengths, over-long varints, wrong wire types ...): never an untyped error."""
    descriptor = expect_typed(parse_descriptor, payload)
    if isinstance(descriptor, ModelDescriptor):
        assert descriptor.name and descriptor.data_type and descriptor.WhichOneof("content")
    check_admission(admit(cache, payload, schema), payload)


@fuzz_settings(100)
@given(seed=st.sampled_from([LINEAR, TREE]), data=st.data())
def test_a_mutated_pmml_artifact_is_admitted_or_rejected_never_raised(cache, seed, data):
    """The PMML bytes themselves mutated (checksum kept true, so the compiler reads them): an answer, never a crash."""
    pmml = ModelDescriptor.FromString(seed).data
    payload = with_artifact(seed, data.draw(mutated(st.just(pmml))))
    check_admission(admit(cache, payload), payload)


#: Every number written in a PMML attribute (coefficients, thresholds, probabilities, ...).
_NUMBER = re.compile(rb'"(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)"')


@fuzz_settings(60)
@given(seed=st.sampled_from([LINEAR, TREE]), data=st.data())
def test_a_pmml_number_replaced_by_nan_inf_or_a_huge_value_is_admitted_or_rejected(cache, seed, data):
    """NaN, the infinities and huge values for coefficients and thresholds: accepted only with a finite probe score."""
    pmml = ModelDescriptor.FromString(seed).data
    spots = list(_NUMBER.finditer(pmml))
    spot = data.draw(st.sampled_from(spots))
    value = data.draw(st.one_of(doubles.map(repr), st.sampled_from(["NaN", "INF", "-INF", "1e999", "", "0x10"])))
    artifact = pmml[: spot.start(1)] + value.encode() + pmml[spot.end(1) :]
    payload = with_artifact(seed, artifact)
    admission = admit(cache, payload)
    check_admission(admission, payload)


@pytest.mark.parametrize("fmt", [name for name in format_names() if not name.startswith("tensorflow")])
def test_an_artifact_of_another_format_or_random_bytes_is_rejected_by_every_format(cache, fmt):
    """A descriptor naming each registered format, carrying another format's artifact or garbage: rejected.

    (The TensorFlow formats load TensorFlow: :mod:`tests.unit.fuzz.graphs` checks them, in its own process.)
    """
    artifacts = {
        "pmml": ModelDescriptor.FromString(LINEAR).data,
        "tensorflow": ModelDescriptor.FromString(model_message("tf", "1", T0)).data,
        "zip": b"PK\x03\x04" + bytes(64),
        "random": bytes(range(256)),
        "empty": b"",
    }
    for kind, artifact in artifacts.items():
        if kind == fmt:
            continue
        payload = with_artifact(LINEAR, artifact, fmt)
        admission = admit(cache, payload)
        check_admission(admission, payload)
        assert not admission.accepted, kind


def test_mutated_tensorflow_graphs_are_rejected_in_a_process_that_survives():
    """TensorFlow graphs with bits flipped or cut short, admitted in a child process: it must exit cleanly.

    A child, because a graph TensorFlow's optimizer cannot handle aborts the
    process (a failed ``CHECK``) instead of raising; here that fails one test,
    not the whole run.
    """
    env = {**os.environ, "MODELSERVING_FUZZ_SCALE": str(SCALE), "TF_CPP_MIN_LOG_LEVEL": "3"}
    child = subprocess.run(
        [sys.executable, "-m", "tests.unit.fuzz.graphs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    detail = "\n".join([*child.stdout.splitlines()[-15:], *child.stderr.splitlines()[-25:]])
    assert child.returncode == 0, f"the TensorFlow fuzz process exited with {child.returncode}:\n{detail}"
    assert "examples passed" in child.stdout, detail
