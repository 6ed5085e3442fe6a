"""Real exports take the fast path: at least 90 % of the sklearn2pmml test set loads on the NumPy engine."""

from __future__ import annotations

from tests.support.pmml_exports import KINDS
from tests.unit.formats.pmml.oracle_support import Served

#: The share of the exports the default engine must compile (issue 15).
REQUIRED = 0.9


def test_the_default_engine_compiles_at_least_90_percent_of_the_exports(sklearn_exports, monkeypatch):
    monkeypatch.delenv("MODELSERVING_PMML_ENGINE", raising=False)
    engines, fallbacks = {}, {}
    for kind in KINDS:
        model = Served.export(sklearn_exports[kind]).load(None)
        try:
            engines[kind] = model.engine
            if model.engine != "numpy":
                fallbacks[kind] = model.engine_note
        finally:
            model.close()
    compiled = sum(engine == "numpy" for engine in engines.values()) / len(engines)
    report = "\n".join(f"  {kind}: {engines[kind]} ({why})" for kind, why in fallbacks.items())
    print(f"\n{compiled:.0%} of {len(engines)} exports on the NumPy engine; fallbacks:\n{report or '  none'}")
    assert compiled >= REQUIRED, f"only {compiled:.0%} compile; fallbacks:\n{report}"
