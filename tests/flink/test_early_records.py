"""Records that arrive before any model: held and scored by the first model, or dead-lettered."""

from __future__ import annotations

import pytest

from serving.testing import T0
from serving.testing import model_message as model
from serving.testing import wine_records as records
from tests.support.flink import run_bounded

pytestmark = pytest.mark.flink

MODEL_AT = 500


@pytest.mark.parametrize(
    ("job", "mode", "parallelism"),
    [("keyed", "hold", 2), ("keyed", "drop", 1), ("partitioned", "hold", 1), ("partitioned", "drop", 2)],
)
def test_early_records(tmp_path, wine_data, job, mode, parallelism):
    data = records(wine_data.features[:1000]) + records(wine_data.features[:20], data_type="orphan", prefix="o")
    outputs = run_bounded(
        tmp_path,
        job,
        parallelism,
        data,
        [model("linear", "first", T0 + MODEL_AT)],
        wine_shaped=("orphan",),
        early_records=mode,
    )
    scored = {r["record_id"]: r["model_version"] for r in outputs.results}
    no_model = sorted(d["record_id"] for d in outputs.dead_letters if d["reason"] == "no model")
    orphans = sorted(f"o{i}" for i in range(20))
    if mode == "hold":
        # Every wine record is scored once, the early ones by the first model.
        assert scored == {str(i): "first" for i in range(1000)}
        # A data type that never gets a model is not lost: at end of input it is dead-lettered.
        assert no_model == orphans
    else:
        assert scored == {str(i): "first" for i in range(MODEL_AT, 1000)}
        assert no_model == sorted([str(i) for i in range(MODEL_AT)] + orphans)
    assert len(outputs.results) == len(scored)
