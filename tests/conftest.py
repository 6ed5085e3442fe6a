"""Shared fixtures: the reference wine data and models shipped in serving/reference."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from serving.records import wine

REFERENCE_MODELS = wine.reference_dir() / "models"
TF_GRAPH = REFERENCE_MODELS / "optimized_WineQuality.pb"
TF_SAVED = REFERENCE_MODELS / "wine_savedmodel"
PMML_FILES = sorted(REFERENCE_MODELS.glob("*.pmml"))
PMML_LINEAR = REFERENCE_MODELS / "winequalityLinearRegression.pmml"
PMML_TREE = REFERENCE_MODELS / "winequalityDecisionTreeClassification.pmml"
PMML_FOREST = REFERENCE_MODELS / "winequalityRandonForrestClassification.pmml"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def wine_data() -> wine.WineData:
    """All 1,599 rows of the UCI red-wine data."""
    return wine.read_wine_csv(wine.reference_csv())
