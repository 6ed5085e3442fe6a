"""C4's offline scores: every acknowledged record scored by every published model version, outside Flink.

The models are built from the very descriptor bytes the generator published
and score all rows in one batch per version, with nothing of the job's
streaming path (no Flink, no state, no buffers). What this checks is the
stream: that a result names the version whose score it carries, after every
fault and restore. That each format scores like its framework is tested
elsewhere, against the frameworks and JPMML-Evaluator.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping

import numpy as np

from serving.faults.generator import GroundTruth
from serving.formats import load_model, parse_descriptor


def offline_scores(
    truth: GroundTruth, features: np.ndarray, wanted: Mapping[str, Collection[str]] | None = None
) -> Callable[[str, str], float | None]:
    """``expected(version, record_id)``: the score version ``version`` gives record ``record_id`` offline.

    None for a version nobody published or an id that was never acknowledged.
    Each version scores, the first time it is asked, the ids ``wanted`` names
    for it (the results that name it; a slow model scoring every row would
    take longer than the run), or every acknowledged row when ``wanted`` is None.
    """
    messages = {m.version: m.message for m in truth.models}
    scored: dict[str, dict[str, float]] = {}

    def expected(version: str, record_id: str) -> float | None:
        if version not in messages or record_id not in truth.rows:
            return None
        if version not in scored:
            ids = sorted(i for i in (truth.rows if wanted is None else wanted.get(version, ())) if i in truth.rows)
            rows = features[[truth.rows[i] for i in ids]] if ids else np.empty((0, features.shape[1]))
            model = load_model(parse_descriptor(messages[version]))
            try:
                values = np.asarray(model.score_batch(rows).scores, dtype=np.float64) if ids else np.empty(0)
            finally:
                model.close()
            scored[version] = dict(zip(ids, values.tolist(), strict=True))
        return scored[version].get(record_id)

    return expected
