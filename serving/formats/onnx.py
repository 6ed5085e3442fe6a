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

    Class labels: a ZipMap output names them; without one they come from the
    graph's ai.onnx.ml classifier node (``classlabels_strings`` or
    ``classlabels_int64s``/``classlabels_ints``), in its probability column
    order. The descriptor's ``labels`` metadata overrides both; only a graph
    that names none scores class indices 0..K-1.
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
        self._graph_labels = graph_class_labels(artifact, self._outputs[0] if self._outputs else "")
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
            labels = metadata_list(self.descriptor, "labels") or self._graph_labels
            if labels is None or len(labels) != matrix.shape[1]:
                labels = tuple(str(i) for i in range(matrix.shape[1]))
        return classify(matrix, labels)

    def close(self) -> None:
        """Drop the inference session."""
        self._session = None


#: The ai.onnx.ml classifier operators, which carry their class labels as attributes.
_CLASSIFIER_OPS = {"LinearClassifier", "TreeEnsembleClassifier", "SVMClassifier"}
_LABEL_ATTRIBUTES = ("classlabels_strings", "classlabels_int64s", "classlabels_ints")


def graph_class_labels(artifact: bytes, label_output: str) -> tuple[str, ...] | None:
    """The class labels of the classifier node behind ``label_output``, or None when the graph names none.

    The node whose first output is the graph's label output wins; failing that,
    the graph's only classifier node. Strings are decoded as UTF-8, integers
    written in decimal, as scikit-learn prints its classes.
    """
    import onnx  # on first use, like onnxruntime

    try:
        graph = onnx.load_from_string(artifact).graph
    except Exception:  # onnxruntime accepted the bytes; a parser quirk just means no labels
        return None
    classifiers = [n for n in graph.node if n.domain == "ai.onnx.ml" and n.op_type in _CLASSIFIER_OPS]
    behind_output = [n for n in classifiers if n.output and n.output[0] == label_output]
    chosen = behind_output or (classifiers if len(classifiers) == 1 else [])
    if not chosen:
        return None
    attributes = {a.name: a for a in chosen[0].attribute}
    for name in _LABEL_ATTRIBUTES:
        attribute = attributes.get(name)
        if attribute is not None and (attribute.strings or attribute.ints):
            if attribute.strings:
                return tuple(s.decode("utf-8") for s in attribute.strings)
            return tuple(str(i) for i in attribute.ints)
    return None


def _is_label_output(output) -> bool:
    array = np.asarray(output)
    return array.ndim == 1 and (array.dtype.kind in "iuUSO")
