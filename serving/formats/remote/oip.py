"""``oip``: a model served by a model server over the Open Inference Protocol (KServe v2, REST).

The descriptor's ``location`` is the server's base URL (``http://host:port``),
and its host must be on the allow-list (``MODELSERVING_REMOTE_MODEL_HOSTS``,
loopback only by default). Its metadata:

* ``model_name``: the model's name on the server (default: the descriptor's name);
* ``model_version``: a version on the server to call (default: the server's choice);
* ``input_name``, ``input_datatype`` (``FP64`` or ``FP32``): the input tensor
  (default: what the server's model metadata declares, else ``input-0``, ``FP64``);
* ``output_name``: the output to ask for, e.g. ``predict_proba`` for a
  scikit-learn classifier on MLServer (default: the server's default output);
* ``timeout_ms``: how long one request may wait for its reply
  (default: ``MODELSERVING_REMOTE_TIMEOUT_MS``);
* ``feature_names``: the data type's columns the input tensor's columns
  are, by name, as for every format; ``labels``: class labels of a
  probability output, in its column order.

On load the model checks ``/v2/models/{m}/ready`` and reads the model's
metadata, whose input width (when declared) must match the bound features.
Scoring sends the whole batch as one ``[N, F]`` tensor in one request.
Outputs follow the result rule: ``[N]`` or ``[N, 1]`` regress (or give a
classifier's label), ``[N, K]`` are class probabilities.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from serving.core.model import BatchScores, Model, ModelDescriptor, RawPrediction, classify
from serving.errors import (
    CorruptModelError,
    InputRangeError,
    InputShapeError,
    ModelSchemaError,
    RemoteModelNotReady,
    RemoteScoringError,
    ServingError,
)
from serving.formats.common import metadata_list
from serving.formats.remote.breaker import CircuitBreaker
from serving.formats.remote.client import OipClient
from serving.formats.remote.protocol import (
    INPUT_DATATYPES,
    check_location,
    infer_request,
    labels_parameter,
    model_path,
    response_output,
    server_input,
    server_output_labels,
)
from serving.settings import environment

if TYPE_CHECKING:
    from serving.records.schema import Column

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RemoteScores(BatchScores):
    """Scores of a remote model's batch, with the model version the server reported for it."""

    served_version: str = ""


def remote_descriptor(
    location: str,
    *,
    data_type: str,
    name: str | None = None,
    version: str | None = None,
    description: str = "",
    metadata: dict[str, str] | None = None,
) -> ModelDescriptor:
    """Describe the remote model at ``location`` for publishing (``publish model --type oip --location URL``).

    ``name`` defaults to the metadata's ``model_name``; the version defaults to
    the metadata's ``model_version``, else 12 hex digits of the SHA-256 of the
    URL and the remote name, so publishing the same remote model twice gives
    the same version.

    Raises:
        RemoteLocationError: the URL is not a base URL this machine's allow-list accepts.
        ConfigError: neither ``name`` nor ``metadata["model_name"]``.
    """
    import hashlib

    from serving.errors import ConfigError
    from serving.formats.registry import set_format

    metadata = dict(metadata or {})
    base_url = check_location(location, environment().remote_host_list())
    remote_name = metadata.get("model_name") or name
    if not remote_name:
        raise ConfigError("a remote model needs --name or --metadata model_name=NAME (its name on the server)")
    digest = hashlib.sha256(f"{base_url} {remote_name} {metadata.get('model_version', '')}".encode()).hexdigest()
    descriptor = ModelDescriptor(
        name=name or remote_name,
        description=description,
        data_type=data_type,
        version=version or metadata.get("model_version") or digest[:12],
        created_at=int(time.time() * 1000),
        metadata=metadata,
    )
    descriptor.location = base_url
    set_format(descriptor, "oip")
    return descriptor


def remote_location(descriptor: ModelDescriptor) -> str:
    """The server URL a descriptor names: its ``location``, or (restored from state) its inline data."""
    if descriptor.WhichOneof("content") == "location":
        return descriptor.location
    return descriptor.metadata.get("source_location") or bytes(descriptor.data).decode("utf-8", "replace")


class OipModel(Model):
    """A model on a model server that speaks the Open Inference Protocol; see the module docstring.

    The artifact is the server's checked base URL (UTF-8), so a model kept in
    state as :meth:`to_bytes` names its server. Its scores are
    :class:`RemoteScores`, whose ``served_version`` is the version the server
    reported for that batch; ``served_version`` on the model is the one of
    its last reply (before any: the ``model_version`` asked for, else ``""``).
    """

    format_name = "oip"
    suffixes = ()
    #: The jobs score it in PyFlink's async operator (serving.core.remote_batches), not in the serving function.
    asynchronous = True

    @classmethod
    def own_artifact(cls, descriptor: ModelDescriptor) -> bytes:
        """The artifact of a remote model: its base URL, checked against the allow-list.

        Raises:
            RemoteLocationError: not http(s), or a host off the allow-list.
        """
        return check_location(remote_location(descriptor), environment().remote_host_list()).encode()

    def __init__(self, descriptor: ModelDescriptor, artifact: bytes, columns: Sequence[Column] | None = None) -> None:
        super().__init__(descriptor, artifact, columns)
        settings = environment()
        self.base_url = check_location(artifact.decode("utf-8", "replace"), settings.remote_host_list())
        meta = descriptor.metadata
        self.remote_name = meta.get("model_name") or descriptor.name
        self.remote_version = meta.get("model_version", "")
        self.output_name = meta.get("output_name", "")
        self.timeout_ms = _positive_int(meta.get("timeout_ms"), settings.remote_timeout_ms, "timeout_ms")
        #: The version the server reported in its last reply.
        self.served_version = self.remote_version
        self._last = threading.local()  # per thread: the served version of the batch it scored last
        self._path = model_path(self.remote_name, self.remote_version)
        breaker = CircuitBreaker(
            f"{self.base_url} ({self.remote_name})", settings.remote_breaker_failures, settings.remote_breaker_open_ms
        )
        self._client = OipClient(self.base_url, self.timeout_ms / 1000, breaker=breaker)
        try:
            server = self._server_metadata(restored=descriptor.WhichOneof("content") == "data")
            name, datatype, width = server_input(server, meta.get("input_name", ""))
            self.input_name = meta.get("input_name") or name or "input-0"
            self.input_datatype = _datatype(meta.get("input_datatype", ""), datatype)
            self.input_dtype = INPUT_DATATYPES[self.input_datatype]
            self._server_labels = server_output_labels(server, self.output_name)
            self.bind(metadata_list(descriptor, "feature_names"), width=width)
        except BaseException:
            self._client.close()
            raise
        # What the server's metadata said goes into state with the model (to_bytes), for a restore
        # while the server is down; the caller's descriptor stays as it was.
        self.descriptor = ModelDescriptor()
        self.descriptor.CopyFrom(descriptor)
        self.descriptor.metadata["input_name"] = self.input_name
        self.descriptor.metadata["input_datatype"] = self.input_datatype

    def _server_metadata(self, *, restored: bool) -> dict[str, Any]:
        """Readiness, then the model's metadata.

        A model restored from state was admitted before: a server that is down
        now does not stop the job restoring it (its requests report the server's state).
        """
        try:
            self._client.ready(self._path)
            return self._client.metadata(self._path)
        except RemoteModelNotReady as exc:
            if not restored:
                raise RemoteModelNotReady(f"remote model {self.remote_name!r}: {exc}") from exc
            log.warning("restored remote model %s without its server's metadata: %s", self.name, exc)
            return {}

    def score_batch(self, features: np.ndarray) -> RemoteScores:
        """:meth:`Model.score_batch`, whose scores also carry the version the server reported for this batch."""
        scores = super().score_batch(features)
        version = getattr(self._last, "version", self.served_version) if len(scores) else self.served_version
        return RemoteScores(scores.scores, scores.probabilities, scores.labels, scores.duration_ns, version)

    async def ascore_batch(self, features: np.ndarray) -> RemoteScores:
        """:meth:`score_batch` without blocking, for an event loop (PyFlink's ``AsyncFunction``).

        The same checks, request, result rule and errors; the asynchronous
        client belongs to the first event loop that calls this.
        """
        features = np.asarray(features)
        features = features if features.dtype == object else features.astype(np.float64, copy=False)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise InputShapeError(
                f"model {self.name}:{self.version} takes [rows, {self.n_features}] features, got {features.shape}"
            )
        unfit = self.unfit_rows(features)
        if unfit.any():
            raise InputRangeError(
                f"row {int(np.flatnonzero(unfit)[0])} has a value that does not fit the {self.input_dtype} input "
                f"of model {self.name}:{self.version} ({int(unfit.sum())} such rows)"
            )
        if features.shape[0] == 0:
            return RemoteScores(np.empty(0), None, (), 0, self.served_version)
        inputs = self.model_inputs(features)
        started = time.perf_counter_ns()
        reply = await self._client.ainfer(self._path, self._request(inputs))
        try:
            raw, version = self._decode(reply, len(inputs))
        except ServingError:
            raise
        except Exception as exc:  # a reply whose numbers NumPy refuses
            raise RemoteScoringError(f"model {self.name}:{self.version} got a reply it cannot read: {exc}") from exc
        duration = time.perf_counter_ns() - started
        return RemoteScores(np.asarray(raw.scores, dtype=np.float64), raw.probabilities, raw.labels, duration, version)

    def _predict(self, inputs: np.ndarray) -> RawPrediction:
        raw, self._last.version = self._decode(self._client.infer(self._path, self._request(inputs)), len(inputs))
        return raw

    def _request(self, inputs: np.ndarray) -> dict[str, Any]:
        return infer_request(inputs, self.input_name, self.input_datatype, self.output_name)

    def _decode(self, reply: dict[str, Any], rows: int) -> tuple[RawPrediction, str]:
        """The prediction in a reply by the result rule, and the version the server reports (or the last known)."""
        version = str(reply.get("model_version") or self.served_version)
        self.served_version = version
        output, tensor = response_output(reply, self.output_name, rows)
        labels = metadata_list(self.descriptor, "labels") or labels_parameter(tensor) or self._server_labels
        if output.ndim == 1 or (output.ndim == 2 and output.shape[1] == 1):
            return RawPrediction(scores=self._label_scores(output.reshape(-1), labels)), version
        matrix = output.reshape(output.shape[0], -1).astype(np.float64)
        if labels is not None and len(labels) != matrix.shape[1]:
            raise RemoteScoringError(
                f"remote model {self.remote_name!r} gave {matrix.shape[1]} class probabilities for {len(labels)} labels"
            )
        return classify(matrix, labels or tuple(str(i) for i in range(matrix.shape[1]))), version

    def _label_scores(self, values: np.ndarray, labels: tuple[str, ...] | None) -> np.ndarray:
        """Scores of a one-column output: numbers as they are; string labels as numbers, or their index in labels."""
        if values.dtype != object:
            return values.astype(np.float64)
        try:
            return np.asarray([float(v) for v in values], dtype=np.float64)
        except ValueError:
            if labels is None or any(str(v) not in labels for v in values):
                raise RemoteScoringError(
                    f"remote model {self.remote_name!r} returned labels that are not numbers; name them with "
                    "metadata labels"
                ) from None
            return np.asarray([labels.index(str(v)) for v in values], dtype=np.float64)

    async def aclose(self) -> None:
        """Close the connections :meth:`ascore_batch` opened, from the event loop that opened them."""
        await self._client.aclose()

    def close(self) -> None:
        """Close the connections to the server."""
        self._client.close()


def _positive_int(raw: str | None, default: int, key: str) -> int:
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value <= 0:
        raise CorruptModelError(f"metadata {key} must be a positive whole number, not {raw!r}")
    return value


def _datatype(declared: str, server: str) -> str:
    """The input datatype: the descriptor's, else the server's, else FP64; FP32 or FP64, and not contradicting."""
    chosen = (declared or server or "FP64").upper()
    if chosen not in INPUT_DATATYPES:
        raise ModelSchemaError(f"remote input datatype {chosen} is not one of {', '.join(INPUT_DATATYPES)}")
    if server and server != chosen:
        raise ModelSchemaError(f"metadata input_datatype {chosen} contradicts the model server's {server}")
    return chosen
