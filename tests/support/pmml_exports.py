"""Exports by sklearn2pmml (JPMML-SkLearn), made in its side venv, with the training library's own answers.

``scripts/export_sklearn_models.py`` trains and exports (it runs in the side
venv, whose pins clash with the project's); this module runs it and reads what
it wrote. :func:`all_exports` (and the session fixture ``sklearn_exports``)
exports every kind in one side-venv process (30-100 s: one JVM per export) and
keeps the result in ``.cache/pmml_exports/<digest>``, where the digest covers
the script and the side venv's requirements: everything is seeded, so the same
inputs give the same files, and a change to either exports afresh.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.reference import PROJECT_ROOT

#: The side venv ``make sidevenvs`` creates (its pins clash with apache-beam's).
SIDE_PYTHON = PROJECT_ROOT / ".cache" / "venvs" / "sklearn2pmml" / "bin" / "python"
EXPORT_SCRIPT = PROJECT_ROOT / "scripts" / "export_sklearn_models.py"
SIDE_REQUIREMENTS = PROJECT_ROOT / "scripts" / "sidevenv-sklearn2pmml.txt"
CACHE = PROJECT_ROOT / ".cache" / "pmml_exports"
#: The kinds the script exports (known here without the side venv, for test ids; a test checks they agree).
KINDS = (
    "tree_classifier",
    "tree_regressor",
    "forest_classifier",
    "gbm_classifier",
    "gbm_binary",
    "gbm_regressor",
    "mlp_classifier",
    "mlp_regressor",
    "naive_bayes",
    "svc",
    "svr",
    "logistic_regression",
    "poisson_regressor",
    "tweedie_regressor",
    "scaler_logistic",
    "minmax_ridge",
    "knn_classifier",
    "lgbm_classifier",
    "lgbm_regressor",
    "lgbm_missing",
    "glm_poisson",
    "glm_binomial",
    "logistic",
    "tree",
)


@dataclass(frozen=True)
class Export:
    """A PMML export, the rows it was trained on, and what the training library itself predicts for them.

    ``predict`` holds label strings for a classifier, floats for a regressor;
    ``classes`` is the column order of ``predict_proba``, which is None when
    the estimator has no probabilities (an SVC); a regressor has no classes.
    """

    pmml: Path
    rows: list[dict]
    classes: list[str]
    predict: list
    predict_proba: list[list[float]] | None
    kind: str = ""
    function: str = "classification"
    manifest: dict = field(default_factory=dict)

    @property
    def avro_schema(self) -> dict:
        """An Avro record schema for ``rows``: strings stay strings, numbers are doubles, nullable if any is null."""
        fields = []
        for name in self.rows[0]:
            values = [row[name] for row in self.rows]
            kind = "string" if any(isinstance(v, str) for v in values) else "double"
            fields.append({"name": name, "type": ["null", kind] if None in values else kind})
        return {"type": "record", "name": self.kind or "export", "fields": fields}


def _side_python() -> Path:
    if not SIDE_PYTHON.exists():
        raise AssertionError(f"{SIDE_PYTHON} is missing: run `make sidevenvs` (part of `make setup`)")
    return SIDE_PYTHON


def _run(which: str, out_dir: Path) -> None:
    proc = subprocess.run(
        [str(_side_python()), str(EXPORT_SCRIPT), which, str(out_dir)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def read_export(directory: Path) -> Export:
    """The export ``export_sklearn_models.py`` wrote to ``directory`` (``OUT_DIR/KIND``)."""
    expected = json.loads((directory / "expected.json").read_text())
    manifest = json.loads((directory / "manifest.json").read_text())
    return Export(
        pmml=directory / "model.pmml",
        rows=json.loads((directory / "rows.json").read_text()),
        classes=expected.get("classes", []),
        predict=expected["predict"],
        predict_proba=expected.get("predict_proba"),
        kind=manifest["kind"],
        function=expected["function"],
        manifest=manifest,
    )


def _cached_dir() -> Path:
    """Where the exports of the current script and side venv are kept (may not exist yet)."""
    digest = hashlib.sha256(EXPORT_SCRIPT.read_bytes() + SIDE_REQUIREMENTS.read_bytes()).hexdigest()[:16]
    return CACHE / digest


def export(kind: str, out_dir: Path) -> Export:
    """Train ``kind`` (see ``scripts/export_sklearn_models.py``) in the side venv and export it under ``out_dir``.

    A copy of the cached export when :func:`all_exports` has made one for this script.
    """
    cached = _cached_dir() / kind
    if (cached / "manifest.json").exists():
        shutil.copytree(cached, out_dir / kind, dirs_exist_ok=True)
    else:
        _run(kind, out_dir)
    return read_export(out_dir / kind)


_ALL: dict[str, Export] | None = None


def all_exports(tmp_path_factory: pytest.TempPathFactory | None = None) -> dict[str, Export]:
    """Every kind, by name: exported once (one side-venv process) into the cache, then read from it.

    ``tmp_path_factory`` is unused (the exports live in the cache); it stays for callers that pass it.
    """
    global _ALL
    if _ALL is None:
        out = _cached_dir()
        CACHE.mkdir(parents=True, exist_ok=True)
        # One export at a time: a second xdist worker waits for the first's and reads it, rather than
        # training and exporting every model again beside it (~80 s of both cores).
        with (CACHE / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            _export_all_once(out)
        kinds = [m["kind"] for m in json.loads((out / "manifest.json").read_text())["kinds"]]
        _ALL = {kind: read_export(out / kind) for kind in kinds}
    return _ALL


def _export_all_once(out: Path) -> None:
    """Export every kind into ``out`` unless a session did already."""
    if not (out / "manifest.json").exists():
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=CACHE))
        started = time.perf_counter()
        try:
            _run("all", staging)
            print(f"\nsklearn2pmml exports: {time.perf_counter() - started:.1f} s")
            # Atomic, so an interrupted export never passes for a finished one.
            with contextlib.suppress(OSError):
                staging.rename(out)
        finally:
            shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="session")
def sklearn_exports() -> Iterator[dict[str, Export]]:
    """Every sklearn2pmml export of the test set, by kind (see :func:`all_exports`)."""
    yield all_exports()
