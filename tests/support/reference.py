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
