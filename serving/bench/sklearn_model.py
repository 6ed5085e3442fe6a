"""The bench's own scikit-learn model, one fitted model served two ways: embedded as ONNX, and by MLServer.

:func:`train_sk_model` fits it once per bench run in MLServer's venv (its
scikit-learn writes the ``model.joblib`` MLServer loads, see
``sk_train.py``), then rebuilds the same pipeline here from the fitted
parameters and exports it with skl2onnx in double precision. The ONNX copy
must give that venv's own ``predict_proba`` to :data:`AGREEMENT` on every
reference row, or the run stops: a ratio of two different models means nothing.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from serving.bench.configs import SK_MODEL_NAME, BenchError
from serving.core.model import ModelDescriptor
from serving.paths import CACHE_DIR
from serving.records import wine

#: MLServer and its scikit-learn live in a venv of their own (``make sidevenvs``).
SIDE_VENV = CACHE_DIR / "venvs" / "mlserver"
TRAIN_SCRIPT = Path(__file__).with_name("sk_train.py")
SEED = 0
#: Largest difference allowed between the ONNX copy's probabilities and scikit-learn's.
AGREEMENT = 1e-9


@dataclass(frozen=True)
class SkModel:
    """The fitted model: its ONNX file, the MLServer model repository holding its joblib, and its class labels."""

    onnx_path: Path
    repository: Path
    labels: tuple[str, ...]
    name: str = SK_MODEL_NAME

    @property
    def metadata(self) -> dict[str, str]:
        """Descriptor metadata both copies are published with: the wine features in order, the class labels."""
        return {"feature_names": ",".join(wine.FEATURE_NAMES), "labels": ",".join(self.labels)}


def require_side_venv(venv: Path = SIDE_VENV) -> Path:
    """The side venv's ``bin`` directory.

    Raises:
        BenchError: its ``python`` or ``mlserver`` is missing (one line: run make sidevenvs).
    """
    bin_dir = Path(venv) / "bin"
    missing = [name for name in ("python", "mlserver") if not (bin_dir / name).exists()]
    if missing:
        raise BenchError(f"MLServer's venv {venv} has no {' or '.join(missing)}: run make sidevenvs")
    return bin_dir


def train_sk_model(work_dir: Path, seed: int = SEED, venv: Path = SIDE_VENV) -> SkModel:
    """Fit the model on the wine reference data in MLServer's venv; export the same parameters to ONNX.

    Raises:
        BenchError: the venv is missing, training failed, or the ONNX copy disagrees with scikit-learn.
    """
    bin_dir = require_side_venv(venv)
    data = wine.read_wine_csv(wine.reference_csv())
    if data.quality is None:
        raise BenchError(f"{wine.reference_csv()} has no quality column to train on")
    work_dir = Path(work_dir)
    repository = work_dir / "mlserver-repository"
    rows = work_dir / "sk-rows.json"
    rows.write_text(json.dumps({"features": data.features.tolist(), "target": data.quality.astype(int).tolist()}))
    try:
        # -P: the script's folder must not shadow modules of that venv.
        args = [str(bin_dir / "python"), "-P", str(TRAIN_SCRIPT), str(rows), str(repository), SK_MODEL_NAME, str(seed)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(f"training {SK_MODEL_NAME} in {venv} failed: {exc}") from exc
    if proc.returncode != 0:
        raise BenchError(f"training {SK_MODEL_NAME} in {venv} failed: {proc.stderr.strip()[-500:]}")
    params = json.loads((repository / f"{SK_MODEL_NAME}.params.json").read_text())
    onnx_bytes = onnx_from_params(params)
    check_agreement(onnx_bytes, data.features, np.asarray(params["predict_proba"]))
    onnx_path = work_dir / f"{SK_MODEL_NAME}.onnx"
    onnx_path.write_bytes(onnx_bytes)
    return SkModel(onnx_path, repository, tuple(str(c) for c in params["classes"]))


def onnx_from_params(params: dict) -> bytes:
    """The fitted StandardScaler + LogisticRegression pipeline rebuilt from ``params``, as double-precision ONNX."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    width = len(params["mean"])
    scaler = StandardScaler()
    scaler.mean_, scaler.scale_, scaler.var_ = (np.asarray(params[k]) for k in ("mean", "scale", "var"))
    scaler.n_features_in_, scaler.n_samples_seen_ = width, 1
    classifier = LogisticRegression()
    classifier.coef_, classifier.intercept_ = np.asarray(params["coef"]), np.asarray(params["intercept"])
    classifier.classes_, classifier.n_features_in_ = np.asarray(params["classes"]), width
    pipeline = make_pipeline(scaler, classifier)
    # Double precision, so the copy agrees with scikit-learn to rounding; no ZipMap: probabilities as a tensor.
    onnx = to_onnx(
        pipeline,
        initial_types=[("input", DoubleTensorType([None, width]))],
        options={id(classifier): {"zipmap": False}},
        target_opset=17,
    )
    return onnx.SerializeToString()


def check_agreement(
    onnx_bytes: bytes, features: np.ndarray, expected: np.ndarray, tolerance: float = AGREEMENT
) -> float:
    """The largest difference between the ONNX model's probabilities on ``features`` and ``expected``.

    Raises:
        BenchError: it exceeds ``tolerance``.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    (input_name,) = [i.name for i in session.get_inputs()]
    probabilities = session.run(None, {input_name: np.asarray(features, dtype=np.float64)})[1]
    worst = float(np.max(np.abs(np.asarray(probabilities) - expected)))
    if not worst <= tolerance:
        raise BenchError(
            f"the ONNX copy of {SK_MODEL_NAME} differs from scikit-learn's by {worst:.3g} (> {tolerance:g})"
        )
    return worst


def remote_model_descriptor(
    sk: SkModel, server_url: str, version: str, data_type: str = wine.DATA_TYPE
) -> ModelDescriptor:
    """The ``oip`` descriptor of the remote configuration: ``sk`` on the MLServer at ``server_url``.

    It asks for ``predict_proba``, so remote results carry the same class
    probabilities and labels as the embedded copy's.

    Raises:
        RemoteLocationError: ``server_url`` is not on this machine's allow-list.
    """
    from serving.formats.remote.oip import remote_descriptor

    metadata = {"model_name": sk.name, "output_name": "predict_proba", **sk.metadata}
    return remote_descriptor(server_url, data_type=data_type, name=sk.name, version=version, metadata=metadata)
