"""Session-wide set-up: quiet TensorFlow, the wine data, and the shared fixtures of tests/support."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from serving.records import wine

#: One broker (and its per-test topics) for the whole session, whatever the layer; the JPMML-Evaluator
#: oracle (its JVM shut down at the end) and the sklearn2pmml exports, once per session; a real MLServer per module.
pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.jpmml",
    "tests.support.pmml_exports",
    "tests.support.mlserver",
]


@pytest.fixture(scope="session")
def wine_data() -> wine.WineData:
    """All 1,599 rows of the UCI red-wine data."""
    return wine.read_wine_csv(wine.reference_csv())
