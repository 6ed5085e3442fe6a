"""Helpers shared by the factories: metadata conventions and output shapes."""

from __future__ import annotations

import numpy as np

from serving.core.model import ModelDescriptor, RawPrediction, classify


def metadata_list(descriptor: ModelDescriptor, key: str) -> tuple[str, ...] | None:
    """A comma-separated metadata entry as a tuple, or None when absent."""
    raw = descriptor.metadata.get(key)
    if not raw:
        return None
    return tuple(part.strip() for part in raw.split(","))


def dense_output(descriptor: ModelDescriptor, output: np.ndarray) -> RawPrediction:
    """Apply the result rule to a dense output: [N] or [N,1] regress, [N,K] classify."""
    output = np.asarray(output)
    if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
        return RawPrediction(scores=output.reshape(-1).astype(np.float64))
    labels = metadata_list(descriptor, "labels") or tuple(str(i) for i in range(output.shape[1]))
    return classify(output.reshape(output.shape[0], -1), labels)
