"""The reference data and models shipped in serving/reference, by name, for tests."""

from __future__ import annotations

from pathlib import Path

from serving.records import wine

REFERENCE_MODELS = wine.reference_dir() / "models"
TF_GRAPH = REFERENCE_MODELS / "optimized_WineQuality.pb"
TF_SAVED = REFERENCE_MODELS / "wine_savedmodel"
PMML_FILES = sorted(REFERENCE_MODELS.glob("*.pmml"))
PMML_LINEAR = REFERENCE_MODELS / "winequalityLinearRegression.pmml"
PMML_TREE = REFERENCE_MODELS / "winequalityDecisionTreeClassification.pmml"
PMML_FOREST = REFERENCE_MODELS / "winequalityRandonForrestClassification.pmml"
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def pmml_rows(oracle, path: Path, features) -> list[dict[str, float]]:
    """Wine feature rows as JPMML-Evaluator input dicts for the PMML at ``path`` (its field names, by spelling)."""
    import re

    def plain(name: str) -> str:
        return re.sub(r"[^a-z0-9]", "", name.lower())

    column = {plain(n): c for c, n in enumerate(wine.FEATURE_NAMES)}
    inputs = {name: column[plain(name)] for name in oracle.describe(path).inputs}
    return [{name: float(row[c]) for name, c in inputs.items()} for row in features]
