"""Remote batches through the async path: what the serving function hands over, and what comes back.

The serving function writes a ``RemoteBatch`` for a remote model instead of
calling its server (``score_due(asynchronous=True)``); ``RemoteScorer``, as
PyFlink's async operator runs it, scores it on a real MLServer. The oracle is
scikit-learn's own ``predict_proba`` in MLServer's venv.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from serving.core.remote_batches import RemoteOutcome, RemoteScorer, remote_outcomes, worth_retrying
from serving.core.scoring import score_due
from serving.formats import load_model
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_stats_pb2 import ModelStats
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.wire import DataRecord, check_values
from serving.settings import ServingOptions
from tests.support.mlserver import numeric_schema, oip_descriptor


@pytest.fixture(scope="module")
def served(mlserver):
    server, expected = mlserver
    return server, expected["iris"]


def _handed_over(served, rows: np.ndarray, name: str = "iris"):
    """What the serving function emits for ``rows`` of iris with the remote model ``name``: its remote batches."""
    server, data = served
    schema = numeric_schema("iris", data["schema_order"])
    descriptor = oip_descriptor(
        server.url, "iris", "iris-remote", model_name=name, output_name="predict_proba",
        feature_names=",".join(data["feature_names"]),
    )  # fmt: skip
    model = load_model(descriptor, columns=schema.columns)
    values = [dict(zip(data["schema_order"], row)) for row in rows.tolist()]
    records = [
        DataRecord(f"r{i}", "iris", 1_000 + i, check_values(v, schema), json.dumps(v).encode())
        for i, v in enumerate(values)
    ]
    try:
        scored = score_due(records, {"iris": [(0, model)]}, {"iris": schema}, hold=False, max_held=0,
                           asynchronous=True)  # fmt: skip
    finally:
        model.close()
    return scored


def _outcomes(served, rows, **kwargs) -> dict[RemoteOutcome, list[bytes]]:
    scored = _handed_over(served, rows, **kwargs)
    assert scored.results == [] and len(scored.remote) == 1  # nothing scored in the serving function
    scorer = RemoteScorer("remote-0", ServingOptions(stats_every_records=10))
    try:
        tagged = asyncio.run(scorer.score(scored.remote[0][2]))
    finally:
        scorer.close()
    out: dict[RemoteOutcome, list[bytes]] = {kind: [] for kind in RemoteOutcome}
    for value in tagged:
        kind, payload = remote_outcomes(value)
        out[kind].append(payload)
    return out


def test_a_remote_batch_comes_back_as_scikit_learns_answers_with_the_servers_version(served):
    _, data = served
    rows = np.asarray(data["rows"])[:40]
    out = _outcomes(served, rows)
    results = [ServingResult.FromString(v) for v in out[RemoteOutcome.RESULT]]
    assert [r.record_id for r in results] == [f"r{i}" for i in range(40)]
    assert {(r.model_name, r.served_version) for r in results} == {("iris-remote", "v3")}
    assert [r.record_ts for r in results] == [1_000 + i for i in range(40)]
    got = np.asarray([list(r.probabilities) for r in results])
    np.testing.assert_allclose(got, np.asarray(data["predict_proba"])[:40], rtol=1e-12)
    stats = [ModelStats.FromString(v) for v in out[RemoteOutcome.STATS]]
    assert stats and stats[-1].usage == 40 and stats[-1].instance == "remote-0"
    assert out[RemoteOutcome.DEAD_LETTER] == []


def test_only_a_server_that_was_not_there_is_worth_asking_again():
    def letter(reason: str) -> bytes:
        return RemoteOutcome.DEAD_LETTER.value + DeadLetter(reason=reason, record_id="r").SerializeToString()

    result = RemoteOutcome.RESULT.value + ServingResult(record_id="r").SerializeToString()
    assert worth_retrying([letter("remote unavailable"), letter("remote circuit open"), letter("remote timeout")])
    assert not worth_retrying([letter("remote error")])  # the server answered: asking again gives the same
    assert not worth_retrying([letter("remote unavailable"), result])
    assert not worth_retrying([])


def test_a_server_down_gives_one_dead_letter_per_record_with_the_reason_and_its_bytes(served):
    server, data = served
    rows = np.asarray(data["rows"])[:5]
    scored = _handed_over(served, rows)
    server.kill()
    scorer = RemoteScorer("remote-0", ServingOptions())
    try:
        tagged = asyncio.run(scorer.score(scored.remote[0][2]))
    finally:
        scorer.close()
        server.start()
    kinds = [remote_outcomes(v)[0] for v in tagged]
    assert kinds == [RemoteOutcome.DEAD_LETTER] * 5
    letters = [DeadLetter.FromString(remote_outcomes(v)[1]) for v in tagged]
    assert [(d.record_id, d.reason) for d in letters] == [(f"r{i}", "remote unavailable") for i in range(5)]
    assert worth_retrying(tagged)  # the async operator asks again later
    assert json.loads(letters[0].payload) == dict(zip(data["schema_order"], rows[0].tolist()))
