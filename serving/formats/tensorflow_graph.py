"""``tensorflow``: a frozen GraphDef, scored through a pruned ``wrap_function``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from serving.core.model import Model, ModelDescriptor, RawPrediction
from serving.errors import CorruptModelError
from serving.formats.common import dense_output, metadata_list

if TYPE_CHECKING:
    from serving.records.schema import Column


class TensorFlowGraphModel(Model):
    """Frozen graph bytes; input/output from metadata ``input``/``output`` or discovered.

    Discovery takes the graph's single ``Placeholder`` as input and its last
    node as output, which is how Keras-to-frozen-graph exports are laid out.
    """

    format_name = "tensorflow"
    suffixes = (".pb",)

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes, columns: Sequence[Column] | None = None) -> None:
        super().__init__(descriptor, artifact, columns)
        import tensorflow as tf  # on first use: listing the formats must not load TensorFlow

        self._constant = tf.constant
        graph_def = tf.compat.v1.GraphDef()
        graph_def.ParseFromString(artifact)
        if not graph_def.node:
            raise CorruptModelError(f"model {descriptor.name!r}: GraphDef has no nodes")
        _check_constants(graph_def, descriptor)
        placeholders = [n for n in graph_def.node if n.op == "Placeholder"]
        input_name = descriptor.metadata.get("input") or _only(placeholders, descriptor).name
        output_name = descriptor.metadata.get("output") or graph_def.node[-1].name

        def _import() -> None:
            tf.compat.v1.import_graph_def(graph_def, name="")

        wrapped = tf.compat.v1.wrap_function(_import, [])
        graph = wrapped.graph
        input_tensor = graph.get_tensor_by_name(_tensor(input_name))
        output_tensor = graph.get_tensor_by_name(_tensor(output_name))
        self._fn = wrapped.prune(input_tensor, output_tensor)
        self.input_dtype = np.dtype(input_tensor.dtype.as_numpy_dtype)
        width = input_tensor.shape[-1] if input_tensor.shape.rank else None
        width = int(width) if width is not None else _matmul_width(graph_def, input_name)
        self.bind(metadata_list(descriptor, "feature_names"), width=width)
        self.input_name, self.output_name = input_name, output_name

    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        output = self._fn(self._constant(inputs.astype(self.input_dtype))).numpy()
        return dense_output(self.descriptor, output)

    def close(self) -> None:
        """Drop the concrete function so TF can free the graph."""
        self._fn = None


def _only(placeholders, descriptor: ModelDescriptor):
    if len(placeholders) != 1:
        raise CorruptModelError(
            f"model {descriptor.name!r}: found {len(placeholders)} placeholders; set metadata input and output"
        )
    return placeholders[0]


def _check_constants(graph_def, descriptor: ModelDescriptor) -> None:
    """Refuse a ``Const`` whose value is not of its declared dtype: TF's graph optimizer aborts the process on one."""
    for node in graph_def.node:
        if node.op == "Const" and node.attr["value"].tensor.dtype != node.attr["dtype"].type:
            raise CorruptModelError(f"model {descriptor.name!r}: constant {node.name!r} holds a value of another dtype")


def _matmul_width(graph_def, input_name: str) -> int | None:
    """Input width from the first MatMul's kernel, for placeholders saved without a shape."""
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    for node in graph_def.node:
        if node.op == "MatMul" and node.input and node.input[0].split(":")[0] == input_name:
            kernel = consts.get(node.input[1].split(":")[0]) if len(node.input) > 1 else None
            if kernel is not None and kernel.attr["value"].tensor.tensor_shape.dim:
                return int(kernel.attr["value"].tensor.tensor_shape.dim[0].size)
    return None


def _tensor(name: str) -> str:
    return name if ":" in name else f"{name}:0"
