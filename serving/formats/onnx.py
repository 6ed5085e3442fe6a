"""``onnx``: an ONNX ModelProto, scored with onnxruntime."""

from __future__ import annotations

import numpy as np

from serving.core.model import Model, ModelDescriptor, RawPrediction, classify
from serving.formats.common import dense_output, metadata_list

_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}


class OnnxModel(Model):
    """ONNX model with one float input.

    A model with a label output plus a probability output (the layout
    skl2onnx gives classifiers) is a classifier; otherwise the first output
    follows the dense rule: [N] or [N,1] regresses, [N,K] classifies.
    """

    format_name = "onnx"
    suffixes = (".onnx",)

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes) -> None:
        super().__init__(descriptor, artifact)
        import onnxruntime as ort  # on first use: listing the formats must not load onnxruntime

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(artifact, sess_options=options, providers=["CPUExecutionProvider"])
        (first_input, *_) = self._session.get_inputs()
        self.input_name = first_input.name
        self.input_dtype = np.dtype(_NUMPY_TYPES.get(first_input.type, np.float32))
        width = first_input.shape[-1] if first_input.shape else None
        self.n_features = width if isinstance(width, int) else None
        self._outputs = [o.name for o in self._session.get_outputs()]

    def _predict(self, features: np.ndarray) -> RawPrediction:
        results = self._session.run(None, {self.input_name: features.astype(self.input_dtype)})
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
