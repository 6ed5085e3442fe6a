"""The Model contract: values that do not fit the input type are refused, not scored as infinity."""

from __future__ import annotations

import numpy as np
import pytest

from serving.errors import InputRangeError


def test_a_float32_model_refuses_values_it_cannot_hold():
    from serving.core.model import ModelType
    from serving.formats import descriptor_from_path, load_model
    from tests.support.reference import TF_GRAPH

    model = load_model(descriptor_from_path(TF_GRAPH, ModelType.TENSORFLOW))
    try:
        assert model.input_dtype == np.float32
        rows = np.tile(np.asarray([7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]), (3, 1))
        rows[1, 0], rows[2, 5] = 1e308, -1e308
        assert model.unfit_rows(rows).tolist() == [False, True, True]
        with pytest.raises(InputRangeError, match="does not fit the float32 input"):
            model.score_batch(rows)
        assert len(model.score_batch(rows[:1])) == 1
    finally:
        model.close()
