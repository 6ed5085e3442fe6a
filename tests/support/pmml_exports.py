"""Exports by sklearn2pmml (JPMML-SkLearn), made in its side venv, with the training library's own answers."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.reference import PROJECT_ROOT

#: The side venv ``make sidevenvs`` creates (its pins clash with apache-beam's).
SIDE_PYTHON = PROJECT_ROOT / ".cache" / "venvs" / "sklearn2pmml" / "bin" / "python"
TRAIN = Path(__file__).with_name("jpmml_sklearn_train.py")


@dataclass(frozen=True)
class Export:
    """A PMML export, the rows it was trained on, and what scikit-learn itself predicts for them."""

    pmml: Path
    rows: list[dict]
    classes: list[str]
    predict: list[str]
    predict_proba: list[list[float]]


def export(kind: str, out_dir: Path) -> Export:
    """Train ``kind`` (see ``jpmml_sklearn_train.py``) in the side venv and export it to ``out_dir``."""
    if not SIDE_PYTHON.exists():
        raise AssertionError(f"{SIDE_PYTHON} is missing: run `make sidevenvs` (part of `make setup`)")
    proc = subprocess.run(
        [str(SIDE_PYTHON), str(TRAIN), kind, str(out_dir)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    expected = json.loads((out_dir / "expected.json").read_text())
    rows = json.loads((out_dir / "rows.json").read_text())
    return Export(out_dir / "model.pmml", rows, expected["classes"], expected["predict"], expected["predict_proba"])
