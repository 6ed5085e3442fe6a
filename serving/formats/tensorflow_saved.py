"""TENSORFLOW_SAVED: a SavedModel directory, carried as a zip or tar archive."""

from __future__ import annotations

import io
import shutil
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from serving.core.model import Model, ModelDescriptor, RawPrediction
from serving.errors import CorruptModelError, ModelSchemaError
from serving.formats.common import dense_output, metadata_list

if TYPE_CHECKING:
    from serving.records.schema import Column


class TensorFlowSavedModel(Model):
    """SavedModel scored through one signature.

    The signature is metadata ``signature``, else ``serving_default`` when
    present, else the first one. Its single input is fed; the output is metadata
    ``output`` or the signature's only (or first, sorted by name) output.
    """

    format_name = "tensorflow_saved"
    #: A directory holding this file (at any depth) is a SavedModel.
    directory_marker = "saved_model.pb"

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes, columns: Sequence[Column] | None = None) -> None:
        super().__init__(descriptor, artifact, columns)
        import tensorflow as tf  # on first use: listing the formats must not load TensorFlow

        self._constant = tf.constant
        self._workdir = Path(tempfile.mkdtemp(prefix="savedmodel-"))
        try:
            export_dir = _extract(artifact, self._workdir, descriptor)
            self._loaded = tf.saved_model.load(str(export_dir))
            signatures = dict(self._loaded.signatures)
            if not signatures:
                raise CorruptModelError(f"model {descriptor.name!r}: SavedModel has no signatures")
            wanted = descriptor.metadata.get("signature")
            if wanted and wanted not in signatures:
                raise ModelSchemaError(
                    f"model {descriptor.name!r}: no signature {wanted!r}; it has {', '.join(signatures)}"
                )
            key = wanted or ("serving_default" if "serving_default" in signatures else next(iter(signatures)))
            self._fn = signatures[key]
            inputs = self._fn.structured_input_signature[1]
            if len(inputs) != 1:
                raise ModelSchemaError(f"model {descriptor.name!r}: signature {key!r} takes {len(inputs)} inputs")
            ((self.input_name, spec),) = inputs.items()
            outputs = sorted(self._fn.structured_outputs)
            self.output_name = descriptor.metadata.get("output") or outputs[0]
            if self.output_name not in outputs:
                raise ModelSchemaError(
                    f"model {descriptor.name!r}: signature {key!r} has no output {self.output_name!r}"
                )
            self.signature = key
            self.input_dtype = np.dtype(spec.dtype.as_numpy_dtype)
            width = spec.shape[-1] if spec.shape.rank else None
            self.bind(metadata_list(descriptor, "feature_names"), width=int(width) if width is not None else None)
        except BaseException:
            shutil.rmtree(self._workdir, ignore_errors=True)
            raise

    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        result = self._fn(**{self.input_name: self._constant(inputs.astype(self.input_dtype))})
        return dense_output(self.descriptor, result[self.output_name].numpy())

    def close(self) -> None:
        """Drop the loaded model and remove its extracted files."""
        self._fn = None
        self._loaded = None
        shutil.rmtree(self._workdir, ignore_errors=True)


def _extract(artifact: bytes, target: Path, descriptor: ModelDescriptor) -> Path:
    """Unpack a zip/tar(.gz) archive and return the directory holding saved_model.pb."""
    if artifact[:4] == b"PK\x03\x04":
        with zipfile.ZipFile(io.BytesIO(artifact)) as archive:
            for member in archive.namelist():
                if Path(member).is_absolute() or ".." in Path(member).parts:
                    raise CorruptModelError(f"model {descriptor.name!r}: unsafe path {member!r} in archive")
            archive.extractall(target)
    else:
        try:
            with tarfile.open(fileobj=io.BytesIO(artifact), mode="r:*") as archive:
                archive.extractall(target, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise CorruptModelError(
                f"model {descriptor.name!r}: SavedModel data is neither a zip nor a tar archive ({exc})"
            ) from exc
    found = sorted(target.rglob("saved_model.pb"), key=lambda p: len(p.parts))
    if not found:
        raise CorruptModelError(f"model {descriptor.name!r}: archive holds no saved_model.pb")
    return found[0].parent
