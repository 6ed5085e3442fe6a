"""Mutated TensorFlow graphs through model admission, run as ``python -m tests.unit.fuzz.graphs``.

A process of its own (``test_models`` starts it): TensorFlow aborts the
process on some malformed graphs (a failed ``CHECK`` in its optimizer)
rather than raising, and an abort must fail one test, not the test run.
Prints ``N examples passed`` and exits 0 when every mutated graph was
admitted or rejected with a dead letter, and other formats' bytes (and
garbage) named ``tensorflow`` or ``tensorflow_saved`` were rejected.
"""

from __future__ import annotations

import hashlib

from hypothesis import given
from hypothesis import strategies as st

from serving.core.admission import Admission, ModelCache
from serving.core.model import ModelDescriptor
from serving.pb.model_event_pb2 import ModelEvent
from serving.testing import T0, model_message
from tests.unit.fuzz.mutations import bit_flipped, fuzz_settings, spliced, truncated
from tests.unit.fuzz.seeds import WINE

EXAMPLES = 150


@st.composite
def retyped(draw: st.DrawFn, graph: bytes) -> bytes:
    """``graph`` with one constant's value or declared dtype changed to another TensorFlow dtype.

    Mostly to one as wide as ``float`` (``int32``, ``qint32``, ``uint32``): the bytes then fit, and only the
    dtypes disagree.
    """
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef.FromString(graph)
    node = draw(st.sampled_from([n for n in graph_def.node if n.op == "Const"]))
    dtype = draw(st.one_of(st.sampled_from([3, 13, 22]), st.integers(1, 23)))
    if draw(st.booleans()):
        node.attr["value"].tensor.dtype = dtype
    else:
        node.attr["dtype"].type = dtype
    return graph_def.SerializeToString()


def main() -> None:
    """Admit mutated copies of the reference TensorFlow graph; an exception or an abort fails the run."""
    seed = model_message("tf", "1", T0)
    graph = ModelDescriptor.FromString(seed).data
    cache = ModelCache()
    assert cache.admit(seed, WINE).accepted, "the unmutated graph must be accepted"
    seen = []

    @fuzz_settings(EXAMPLES)
    @given(
        st.one_of(
            bit_flipped(graph),
            truncated(graph),
            spliced(graph),
            bit_flipped(graph).flatmap(truncated),
            retyped(graph),
        )
    )
    def admitted_or_rejected(artifact: bytes) -> None:
        descriptor = ModelDescriptor.FromString(seed)
        descriptor.data, descriptor.sha256 = artifact, hashlib.sha256(artifact).hexdigest()
        descriptor.version = hashlib.sha256(artifact).hexdigest()[:12]  # a new model each time, not a duplicate
        admission = cache.admit(descriptor.SerializeToString(), WINE)
        assert isinstance(admission, Admission)
        if not admission.accepted:
            assert admission.event.kind == ModelEvent.REJECTED and admission.dead_letter.reason
        seen.append(artifact)

    admitted_or_rejected()
    pmml = ModelDescriptor.FromString(model_message("linear", "1", T0)).data
    for fmt in ("tensorflow", "tensorflow_saved"):
        for artifact in (pmml, graph[: len(graph) // 2], b"PK\x03\x04" + bytes(64), bytes(range(256)), b""):
            descriptor = ModelDescriptor.FromString(seed)
            descriptor.format, descriptor.data, descriptor.sha256 = fmt, artifact, ""
            admission = cache.admit(descriptor.SerializeToString(), WINE)
            assert not admission.accepted and admission.dead_letter.reason, (fmt, artifact[:20])
    cache.close()
    print(f"{len(seen)} examples passed")


if __name__ == "__main__":
    main()
