"""The wine-quality data type: feature schema and the ``;``-separated CSV format."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from serving.errors import EmptyInputError, InputError, InputShapeError

DATA_TYPE = "wine"

#: Feature names as the UCI data set (and the reference PMML files) spell them.
FEATURE_NAMES: tuple[str, ...] = (
    "fixed acidity",
    "volatile acidity",
    "citric acid",
    "residual sugar",
    "chlorides",
    "free sulfur dioxide",
    "total sulfur dioxide",
    "density",
    "pH",
    "sulphates",
    "alcohol",
)

#: The same features as ``WineRecord`` protobuf field names, in the same order.
RECORD_FIELDS: tuple[str, ...] = (
    "fixed_acidity",
    "volatile_acidity",
    "citric_acid",
    "residual_sugar",
    "chlorides",
    "free_sulfur_dioxide",
    "total_sulfur_dioxide",
    "density",
    "ph",
    "sulphates",
    "alcohol",
)

N_FEATURES = len(FEATURE_NAMES)

#: A realistic wine (row 0 of the data set) used to probe a model before a swap.
PROBE_ROW: tuple[float, ...] = (7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4)


@dataclass(frozen=True)
class WineData:
    """Parsed wine CSV: ``features`` is float64 [N, 11]; ``quality`` is [N] or None."""

    features: np.ndarray
    quality: np.ndarray | None


def reference_dir() -> Path:
    """Directory of the shipped reference data and models (see ATTRIBUTION.md)."""
    return Path(str(resources.files("serving") / "reference"))


def reference_csv() -> Path:
    """Path of the shipped UCI red-wine CSV (1,599 rows)."""
    return reference_dir() / "winequality_red.csv"


def read_wine_csv(path: str | Path) -> WineData:
    """Read a wine CSV: ``;``-separated, no header, 11 features and an optional quality.

    Raises:
        InputError: the file is missing or a value is not a number.
        EmptyInputError: the file has no rows.
        InputShapeError: a row has neither 11 nor 12 columns, or rows disagree.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise InputError(f"cannot read data file {path}: {exc.strerror}") from exc
    rows: list[list[float]] = []
    width: int | None = None
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(";")
        if len(cells) not in (N_FEATURES, N_FEATURES + 1):
            raise InputShapeError(
                f"{path}:{line_no}: expected {N_FEATURES} features (plus an optional quality), got {len(cells)} columns"
            )
        if width is not None and len(cells) != width:
            raise InputShapeError(f"{path}:{line_no}: {len(cells)} columns, earlier rows had {width}")
        width = len(cells)
        try:
            rows.append([float(cell) for cell in cells])
        except ValueError as exc:
            raise InputError(f"{path}:{line_no}: not a number: {exc}") from exc
    if not rows:
        raise EmptyInputError(f"{path} holds no rows")
    table = np.asarray(rows, dtype=np.float64)
    if width == N_FEATURES + 1:
        return WineData(features=table[:, :N_FEATURES].copy(), quality=table[:, N_FEATURES].copy())
    return WineData(features=table, quality=None)
