"""``onnx``: an ONNX ModelProto, scored with onnxruntime."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from serving.core.model import Model, ModelDescriptor, RawPrediction, classify
from serving.formats.common import dense_output, metadata_list

if TYPE_CHECKING:
    from serving.records.schema import Column

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxModel(Model):
    """ONNX model with one float input.

    A model with a label output plus a probability output (the layout
    skl2onnx gives classifiers) is a classifier; otherwise the first output
    follows the dense rule: [N] or [N,1] regresses, [N,K] classifies.
    """

    format_name = "onnx"
    suffixes = (".onnx",)

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes, columns: Sequence[Column] | None = None) -> None:
        super().__init__(descriptor, artifact, columns)
        import onnxruntime as ort  # on first use: listing the formats must not load onnxruntime

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(artifact, sess_options=options, providers=["CPUExecutionProvider"])
        graph_inputs = self._session.get_inputs()
        self._outputs = [o.name for o in self._session.get_outputs()]
        if len(graph_inputs) == 1:
            # One [N, F] tensor: its columns named by feature_names (the descriptor's metadata, else the
            # ONNX model's own metadata_props, where a data scientist can put them), or all features in order.
            (first_input,) = graph_inputs
            self.input_name = first_input.name
            self.input_dtype = np.dtype(_NUMPY_TYPES.get(first_input.type, np.float32))
            width = first_input.shape[-1] if first_input.shape else None
            self._feeds = None
            names = metadata_list(descriptor, "feature_names")
            if names is None:
                props = self._session.get_modelmeta().custom_metadata_map
                names = (
                    tuple(n.strip() for n in props["feature_names"].split(",")) if props.get("feature_names") else None
                )
            self.bind(names, width=width if isinstance(width, int) else None)
        else:
            # One [N, 1] tensor per input, each named after the field it reads (strings as strings).
            self.input_name = ""
            self._feeds = [(i.name, _NUMPY_TYPES.get(i.type, np.float32) if i.type != "tensor(string)" else object)
                           for i in graph_inputs]  # fmt: skip
            kinds = ["string" if dtype is object else "number" for _, dtype in self._feeds]
            self.bind([name for name, _ in self._feeds], kinds=kinds)

    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        if self._feeds is None:
            feed = {self.input_name: inputs.astype(self.input_dtype)}
        else:
            feed = {name: inputs[:, [j]].astype(dtype) for j, (name, dtype) in enumerate(self._feeds)}
        results = self._session.run(None, feed)
        if len(results) >= 2 and _is_label_output(results[0]):
            return self._classifier(results[1])
        return dense_output(self.descriptor, results[0])

    def _classifier(self, probabilities) -> RawPrediction:
        if isinstance(probabilities, list):  # ZipMap: a list of {label: probability}
            labels = tuple(str(k) for k in probabilities[0])
            matrix = np.asarray([[row[k] for k in probabilities[0]] for row in probabilities], dtype=np.float64)
        else:
            matrix = np.asarray(probabilities, dtype=np.float64)
            labels = metadata_list(self.descriptor, "labels") or tuple(str(i) for i in range(matrix.shape[1]))
        return classify(matrix, labels)

    def close(self) -> None:
        """Drop the inference session."""
        self._session = None


def _is_label_output(output) -> bool:
    array = np.asarray(output)
    return array.ndim == 1 and (array.dtype.kind in "iuUSO")
