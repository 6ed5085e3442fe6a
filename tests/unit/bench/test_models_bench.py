"""``bench-models`` measures every export on its own rows under both PMML engines, and says why an engine refuses."""

from __future__ import annotations

import json
import shutil

from serving.bench.models import export_subjects, measure_all
from serving.cli import main
from serving.records import wine
from tests.support.reference import PMML_FOREST, PMML_LINEAR


def _exports(tmp_path):
    rows = [
        dict(zip(wine.FEATURE_NAMES, map(float, r))) for r in wine.read_wine_csv(wine.reference_csv()).features[:40]
    ]
    rows[3]["pH"] = None  # a missing value, as in the LightGBM export trained with them
    for kind, pmml in (("linear", PMML_LINEAR), ("forest", PMML_FOREST)):
        (tmp_path / kind).mkdir()
        shutil.copy(pmml, tmp_path / kind / "model.pmml")
        (tmp_path / kind / "rows.json").write_text(json.dumps(rows))
    return tmp_path


def test_each_export_is_measured_per_engine_and_a_refusal_names_its_reason(tmp_path):
    subjects = export_subjects(_exports(tmp_path))
    assert [(s.name, s.data.shape) for s in subjects] == [("forest", (40, 11)), ("linear", (40, 11))]
    results = {(m.subject.name, m.engine): m for m in measure_all(subjects, single=5, repeat=1)}
    assert set(results) == {(k, e) for k in ("forest", "linear") for e in ("numpy", "pypmml")}
    assert all(m.single > 0 and m.batched > 0 and not m.refused for key, m in results.items() if key[0] == "linear")
    # pypmml loses the forest's class probabilities: refused, never measured as if it were right.
    assert results["forest", "pypmml"].refused == "unreliable evaluator"


def test_the_cli_prints_a_row_per_export_and_engine(tmp_path, capsys):
    assert main(["bench-models", "--exports", str(_exports(tmp_path)), "--single", "3", "--repeat", "1"]) == 0
    out = capsys.readouterr().out
    assert out.count("linear") == 2 and "refused" in out
