"""A deliberately slow model for the ``backpressure`` scenario: a real TensorFlow frozen graph, just deep.

The graph is ``layers`` dense tanh layers of ``width`` units over the 11
wine features, all sharing one seeded weight matrix (so the message stays
small), then a mean scaled into the quality range plus a seeded linear term
of the features (so rows and versions score apart). Its cost per record is
about ``2 * width**2 * layers`` floating-point operations, which makes the
job slower than a 5x burst of the campaign's rate; its weights are scaled
so that tanh contracts, so batch sizes change a score by float rounding only.
"""

from __future__ import annotations

import numpy as np

from serving.pb.model_descriptor_pb2 import ModelDescriptor, ModelType

#: Units per layer and layers: ~1.5 ms of the machine per record (about 650 records/s), 11 * 256 + 256**2 weights.
WIDTH, LAYERS = 256, 960


def slow_graph(seed: int, width: int = WIDTH, layers: int = LAYERS, features: int = 11) -> bytes:
    """The frozen GraphDef bytes: input ``features`` [N, 11] float32, output ``quality`` [N, 1]."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    first = (rng.standard_normal((features, width)) / np.sqrt(features) * 0.1).astype(np.float32)
    shared = rng.standard_normal((width, width)).astype(np.float32)
    shared *= 0.9 / np.linalg.norm(shared, 2)  # spectral norm < 1: each layer contracts
    linear = (rng.standard_normal((features, 1)) * 0.01).astype(np.float32)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, shape=(None, features), name="features")
        weights = tf.constant(shared, name="shared")
        h = tf.tanh(tf.matmul(x, tf.constant(first, name="first")))
        for _ in range(layers):
            h = tf.tanh(tf.matmul(h, weights))
        # The deep part contracts towards 0; a seeded linear term keeps each row's (and version's) score apart.
        direct = tf.matmul(x, tf.constant(linear, name="linear"))
        tf.add(direct + tf.reduce_mean(h, axis=1, keepdims=True) * 10.0, 5.5, name="quality")
    return graph.as_graph_def().SerializeToString()


def slow_model_message(version: str, created_at: int, seed: int, data_type: str = "wine") -> bytes:
    """A ModelDescriptor carrying :func:`slow_graph` for ``data_type`` (seeded: each version scores differently)."""
    import hashlib

    artifact = slow_graph(seed)
    descriptor = ModelDescriptor(
        name="slow",
        description="deep tanh network for the backpressure fault scenario",
        data_type=data_type,
        model_type=ModelType.TENSORFLOW,
        data=artifact,
        version=version,
        created_at=created_at,
        sha256=hashlib.sha256(artifact).hexdigest(),
        format="tensorflow",
    )
    descriptor.metadata["input"] = "features"
    descriptor.metadata["output"] = "quality"
    return descriptor.SerializeToString()
