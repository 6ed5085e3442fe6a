"""Session-wide set-up: quiet TensorFlow, the wine data, and the shared fixtures of tests/support."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from hypothesis import settings as hypothesis_settings

from serving.records import wine

# Property tests are judged on what they find, not on speed: the unit layer shares two cores with the CI
# fault campaign (scripts/run-tests.sh), where a slow example would fail Hypothesis' 200 ms deadline.
hypothesis_settings.register_profile("shared-cores", deadline=None)
hypothesis_settings.load_profile("shared-cores")

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


def pytest_collection_modifyitems(config, items):
    """Modules marked ``heavy`` first (a stable sort, so each module stays together and in order).

    With two workers (scripts/run-tests.sh) a long module that starts last leaves
    one worker idle until it ends; started first, the short ones fill the gaps.
    """
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)
