"""Ensembles for the tests: iris classifiers trained here with scikit-learn and exported to ONNX by skl2onnx.

The oracle for an embedded member is the scikit-learn model it was exported
from (:class:`Embedded` keeps it); remote members are MLServer's models
(tests/support/mlserver.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from serving.core.model import ModelDescriptor, sha256_hex
from serving.formats.ensemble.document import encode
from serving.formats.registry import set_format

#: The iris data type's fields, in schema order (what the ONNX members are trained on).
IRIS_FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


@dataclass
class Embedded:
    """An ONNX member and the scikit-learn model it came from."""

    name: str
    onnx: bytes
    oracle: Any

    def entry(self, priority: int, **metadata: str) -> dict[str, Any]:
        """Its member entry in an ensemble document."""
        descriptor = {"name": self.name, "version": "1", "format": "onnx", "data_base64": encode(self.onnx),
                      "metadata": {"feature_names": ",".join(IRIS_FIELDS), **metadata}}  # fmt: skip
        return {"priority": priority, "descriptor": descriptor}


def iris() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's iris rows (schema order) and targets."""
    from sklearn.datasets import load_iris

    data = load_iris()
    return data.data, data.target


def embedded(name: str, estimator) -> Embedded:
    """``estimator`` fitted on iris, exported to ONNX (float input, as scikit-learn's trees read floats)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    rows, target = iris()
    estimator.fit(rows, target)
    exported = convert_sklearn(
        estimator, initial_types=[("input", FloatTensorType([None, 4]))], target_opset=17, options={"zipmap": False}
    )
    return Embedded(name, exported.SerializeToString(), estimator)


def remote_entry(url: str, name: str, priority: int, trained_order: list[str], **metadata: str) -> dict[str, Any]:
    """A member entry for the MLServer model ``name`` (its probabilities, bound by the order it was trained on)."""
    meta = {"model_name": name, "output_name": "predict_proba", "feature_names": ",".join(trained_order),
            "labels": "0,1,2", **metadata}  # fmt: skip
    descriptor = {"name": name, "version": "1", "format": "oip", "location": url, "metadata": meta}
    return {"priority": priority, "descriptor": descriptor}


def document(members: list[dict[str, Any]], *, decider: str = "first_valid_by_priority", budget_ms: int = 200,
             mode: str = "wallclock", **params: Any) -> dict[str, Any]:  # fmt: skip
    """An iris ensemble document."""
    return {"data_type": "iris", "budget_ms": budget_ms, "mode": mode,
            "decider": {"name": decider, "params": params}, "members": members}  # fmt: skip


def ensemble_descriptor(body: dict[str, Any] | bytes, name: str = "iris-ensemble") -> ModelDescriptor:
    """An ensemble descriptor carrying ``body`` (a document, or raw bytes) inline."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    descriptor = ModelDescriptor(name=name, version="e1", data_type="iris", data=data, sha256=sha256_hex(data))
    set_format(descriptor, "ensemble")
    return descriptor
