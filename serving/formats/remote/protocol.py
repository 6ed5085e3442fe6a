"""The Open Inference Protocol (KServe v2) over REST, as pure functions: locations, requests, replies.

Only the JSON form of tensors is spoken (no binary extension): a request
carries the batch as one ``[N, F]`` tensor, row-major in ``data``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np

from serving.errors import ModelSchemaError, RemoteLocationError, RemoteScoringError

#: The tensor datatypes a request may carry, and their NumPy types.
INPUT_DATATYPES = {"FP64": np.dtype(np.float64), "FP32": np.dtype(np.float32)}


def check_location(location: str, allowed_hosts: Sequence[str]) -> str:
    """The base URL of a model server, normalised (no trailing ``/``), if it may be called.

    It must be ``http`` or ``https``, name no user or password (they would
    travel in every descriptor) nor a query, and its host must be one of
    ``allowed_hosts`` (compared without case; ``[::1]`` is ``::1``).

    Raises:
        RemoteLocationError: one readable line saying which rule it breaks.
    """
    try:
        parts = urlsplit(location.strip())
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError as exc:
        raise RemoteLocationError(f"remote model location {location!r} is not a URL: {exc}") from exc
    if parts.scheme not in ("http", "https") or not host:
        raise RemoteLocationError(f"remote model location {location!r} is not an http(s) URL with a host")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise RemoteLocationError(
            f"remote model location {host!r} must not carry credentials, a query or a fragment: give the base URL"
        )
    allowed = {h.strip().strip("[]").lower() for h in allowed_hosts}
    if host not in allowed:
        shown = ", ".join(sorted(allowed)) or "(none)"
        raise RemoteLocationError(
            f"remote model host {host!r} is not on the allow-list ({shown}); "
            "add it to MODELSERVING_REMOTE_MODEL_HOSTS to call it"
        )
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc += f":{port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def model_path(name: str, version: str = "") -> str:
    """``/v2/models/{name}``, or ``/v2/models/{name}/versions/{version}``, each part URL-quoted."""
    path = f"/v2/models/{quote(name, safe='')}"
    return f"{path}/versions/{quote(version, safe='')}" if version else path


def infer_request(inputs: np.ndarray, input_name: str, datatype: str, output_name: str = "") -> dict[str, Any]:
    """An inference request: the whole batch as one ``[N, F]`` tensor; ``output_name`` asks for that output."""
    matrix = np.asarray(inputs, dtype=INPUT_DATATYPES[datatype])
    request: dict[str, Any] = {
        "inputs": [
            {"name": input_name, "shape": list(matrix.shape), "datatype": datatype, "data": matrix.ravel().tolist()}
        ]
    }
    if output_name:
        request["outputs"] = [{"name": output_name}]
    return request


def server_input(metadata: dict[str, Any], wanted: str = "") -> tuple[str, str, int | None]:
    """The input tensor a server's model metadata declares: (name, datatype, width or None).

    ``wanted`` names it; without, the model's only input. A model whose
    metadata declares no inputs (MLServer's scikit-learn runtime, unless its
    model-settings list them) gives ``(wanted, "", None)``: nothing to check.

    Raises:
        ModelSchemaError: ``wanted`` is not among the declared inputs, there
            are several and none is named, or the shape is not ``[N, F]``.
    """
    declared = metadata.get("inputs") or []
    if not declared:
        return wanted, "", None
    names = [str(i.get("name", "")) for i in declared]
    if wanted:
        if wanted not in names:
            raise ModelSchemaError(f"the model server's model has no input {wanted!r}; it takes {', '.join(names)}")
        chosen = declared[names.index(wanted)]
    elif len(declared) == 1:
        chosen = declared[0]
    else:
        raise ModelSchemaError(f"the model server's model takes {', '.join(names)}: name one with metadata input_name")
    shape = list(chosen.get("shape") or [])
    if len(shape) != 2:
        raise ModelSchemaError(f"the model server's input {chosen.get('name')!r} has shape {shape}, not [N, F]")
    width = int(shape[1]) if int(shape[1]) > 0 else None
    return str(chosen.get("name", "")), str(chosen.get("datatype", "")).upper(), width


def labels_parameter(tensor: dict[str, Any]) -> tuple[str, ...] | None:
    """Class labels a tensor's ``parameters.labels`` names (a list, or a comma-separated string), else None."""
    labels = (tensor.get("parameters") or {}).get("labels")
    if isinstance(labels, str):
        labels = labels.split(",")
    if isinstance(labels, list) and labels:
        return tuple(str(label).strip() for label in labels)
    return None


def server_output_labels(metadata: dict[str, Any], output_name: str) -> tuple[str, ...] | None:
    """Class labels the server's model metadata gives the output ``output_name`` (or its only output)."""
    outputs = metadata.get("outputs") or []
    for tensor in outputs:
        if tensor.get("name") == output_name or (not output_name and len(outputs) == 1):
            return labels_parameter(tensor)
    return None


def response_output(response: dict[str, Any], output_name: str, rows: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The output tensor of an inference reply, as an array of its shape, and the tensor itself.

    ``output_name`` picks it; without, the first output.

    Raises:
        RemoteScoringError: the reply has no such output, or its data does not fit its shape or the batch.
    """
    outputs = response.get("outputs") if isinstance(response, dict) else None
    if not outputs:
        raise RemoteScoringError("the model server's reply holds no outputs")
    chosen = next((o for o in outputs if o.get("name") == output_name), None) if output_name else outputs[0]
    if chosen is None:
        names = ", ".join(str(o.get("name")) for o in outputs)
        raise RemoteScoringError(f"the model server's reply has no output {output_name!r} (it has {names})")
    try:
        data = np.asarray(chosen.get("data"), dtype=object if chosen.get("datatype") == "BYTES" else np.float64)
        array = data.reshape([int(d) for d in chosen.get("shape") or data.shape])
    except (TypeError, ValueError) as exc:
        raise RemoteScoringError(f"the model server's output {chosen.get('name')!r} is malformed: {exc}") from exc
    if array.ndim == 0 or array.shape[0] != rows:
        raise RemoteScoringError(f"the model server returned shape {list(array.shape)} for {rows} rows")
    return array, chosen


def server_error(body: str) -> str:
    """The first line of a model server's error reply (its ``error`` field when JSON), at most 200 characters."""
    import json

    try:
        message = str(json.loads(body).get("error", body))
    except (ValueError, AttributeError):
        message = body
    lines = message.strip().splitlines()
    return (lines[0] if lines else "(empty reply)")[:200]
