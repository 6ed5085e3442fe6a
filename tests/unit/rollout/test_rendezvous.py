"""Challengers beside the champion (issue 17): shadows and a canary score its records, compared; a decoy archives them.

Oracles: JPMML-Evaluator for the PMML models, a TF1 session on the raw GraphDef
(its documented tensor names) for the TensorFlow model, and a BLAKE2b computed
here for which records the canary serves. Nothing expected comes from the code under test.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import tensorflow as tf

from serving.clock import now_ms
from serving.core.entries import Entry
from serving.core.scoring import Locations, decode_entries, score_due
from serving.errors import ConfigError, ScoringError
from serving.formats import load_model, parse_descriptor
from serving.records import bundled_schemas, wine
from serving.records.schema import SchemaRegistry
from serving.records.wine import decode_record, encode_record
from serving.records.wire import Coordinates
from serving.rollout.rendezvous import Challengers, challenge
from serving.settings import ServingOptions
from serving.testing import REFERENCE_MODELS, T0, model_message

SCHEMAS = {s.data_type: s for s in bundled_schemas()}
FOREST, TREE, LINEAR, TF_GRAPH = (REFERENCE_MODELS[k][0] for k in ("forest", "tree", "linear", "tf"))


def _load(kind: str, version: str):
    return load_model(parse_descriptor(model_message(kind, version, T0)))


@pytest.fixture(scope="module")
def models():
    loaded = {kind: _load(kind, f"{kind}-v") for kind in ("linear", "forest", "tree", "tf")}
    yield loaded
    for model in loaded.values():
        model.close()


def _records(features: np.ndarray, prefix: str = "r"):
    return [decode_record(encode_record(f"{prefix}{i}", row, ts=T0 + i)) for i, row in enumerate(features)]


def _jpmml(jpmml, path, features: np.ndarray):
    """JPMML's answers on feature rows: (scores as floats, labels or None, probabilities by label)."""
    rows = [dict(zip(wine.FEATURE_NAMES, map(float, row))) for row in features]
    answers = jpmml.answers(path, rows)
    if answers.description.function == "regression":
        return answers.predicted.astype(np.float64), None, {}
    labels = [str(label) for label in answers.predicted]
    return np.asarray([float(label) for label in labels]), labels, answers.probabilities


def _tf_session(features: np.ndarray) -> np.ndarray:
    """The TF graph's outputs for the rows, from a TF1 session on the raw GraphDef."""
    graph_def = tf.compat.v1.GraphDef.FromString(TF_GRAPH.read_bytes())
    with tf.Graph().as_default() as graph:
        tf.compat.v1.import_graph_def(graph_def, name="")
        with tf.compat.v1.Session(graph=graph) as session:
            return session.run("dense_3/Sigmoid:0", {"dense_1_input:0": features.astype(np.float32)})


def _blake2b_in_canary(data_type: str, version: str, record_id: str, weight_bp: int) -> bool:
    digest = hashlib.blake2b(f"{data_type}/{version}:{record_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 10_000 < weight_bp


def _score(records, champion, challengers=None, **kwargs):
    return score_due(
        records, {"wine": [(0, champion)]}, SCHEMAS, hold=False, max_held=0, challengers=challengers, **kwargs
    )


def _without_durations(results):
    copies = []
    for result in results:
        copy = type(result)()
        copy.CopyFrom(result)
        copy.duration_ns = 0
        copies.append(copy)
    return copies


def test_each_shadow_scores_every_record_as_its_framework_does_and_replaces_nothing(models, wine_data, jpmml):
    features = wine_data.features[:80]
    records = _records(features)
    linear, _, _ = _jpmml(jpmml, LINEAR, features)
    forest, forest_labels, _ = _jpmml(jpmml, FOREST, features)
    tf_winners = np.argmax(_tf_session(features), axis=1)

    scored = _score(records, models["linear"], {"wine": Challengers(shadows=(models["forest"], models["tf"]))})

    alone = _score(records, models["linear"])
    assert _without_durations(scored.results) == _without_durations(alone.results)
    assert all(r.role == "champion" and r.model_version == "linear-v" for r in scored.results)
    np.testing.assert_allclose([r.score for r in scored.results], linear, rtol=0, atol=1e-9)

    assert len(scored.comparisons) == 2 * len(records)
    by_forest, by_tf = scored.comparisons[: len(records)], scored.comparisons[len(records) :]
    for i, (c, result) in enumerate(zip(by_forest, scored.results)):
        assert (c.record_id, c.data_type, c.record_ts, c.challenger_role) == (f"r{i}", "wine", T0 + i, "shadow")
        assert (c.champion.name, c.champion.version, c.challenger.name, c.challenger.version) == (
            "linear",
            "linear-v",
            "forest",
            "forest-v",
        )
        assert c.champion.score == pytest.approx(linear[i], abs=1e-9) and c.champion.label == ""
        assert c.challenger.score == forest[i] and float(c.challenger.label) == float(forest_labels[i])
        assert c.delta == pytest.approx(forest[i] - linear[i], abs=1e-9)
        assert c.agree == (abs(forest[i] - linear[i]) <= 0.5)
        assert c.champion.duration_ns == result.duration_ns and not c.challenger.error
    for i, c in enumerate(by_tf):
        assert (c.record_id, c.challenger.name, c.challenger.version, c.challenger_role) == (
            f"r{i}",
            "tf",
            "tf-v",
            "shadow",
        )
        assert c.challenger.score == tf_winners[i] and c.challenger.label == str(tf_winners[i])
    # One batch per shadow: every record carries the same share of its duration.
    assert len({c.challenger.duration_ns for c in by_tf}) == 1
    assert {c.agree for c in by_forest} == {True, False}, "the rows cover agreement and disagreement"


def test_the_canary_serves_the_records_whose_blake2b_bucket_is_below_its_weight(models, wine_data, jpmml):
    features = wine_data.features[:300]
    records = _records(features)
    served = [_blake2b_in_canary("wine", "tree-v", r.id, 2_500) for r in records]
    assert 30 < sum(served) < 120, "about a quarter of the records"
    forest, forest_labels, forest_probabilities = _jpmml(jpmml, FOREST, features)
    tree, tree_labels, tree_probabilities = _jpmml(jpmml, TREE, features)
    shas = {kind: hashlib.sha256(REFERENCE_MODELS[kind][0].read_bytes()).hexdigest() for kind in ("forest", "tree")}

    rivals = Challengers(canary=models["tree"], canary_weight_bp=2_500)
    scored = _score(records, models["forest"], {"wine": rivals})

    assert [r.record_id for r in scored.results] == [r.id for r in records]
    for i, result in enumerate(scored.results):
        kind, scores, probabilities = (
            ("tree", tree, tree_probabilities) if served[i] else ("forest", forest, forest_probabilities)
        )
        assert (result.model_name, result.model_version, result.model_sha256) == (kind, f"{kind}-v", shas[kind])
        assert result.role == ("canary" if served[i] else "champion")
        assert result.score == scores[i]
        got = dict(zip(result.labels, result.probabilities))
        assert got == pytest.approx({k: float(np.nan_to_num(v[i])) for k, v in probabilities.items()}, abs=1e-9)
    canary_rows = [i for i in range(len(records)) if served[i]]
    assert [c.record_id for c in scored.comparisons] == [f"r{i}" for i in canary_rows]
    for c, i in zip(scored.comparisons, canary_rows):
        assert c.challenger_role == "canary" and (c.champion.version, c.challenger.version) == ("forest-v", "tree-v")
        assert float(c.champion.label) == float(forest_labels[i]) and float(c.challenger.label) == float(tree_labels[i])
        assert c.agree == (float(forest_labels[i]) == float(tree_labels[i]))
        assert c.challenger.duration_ns == scored.results[i].duration_ns


def test_a_failing_canary_leaves_the_champions_results_and_records_why(models, wine_data, jpmml, monkeypatch):
    features = wine_data.features[:40]
    records = _records(features)
    forest, _, _ = _jpmml(jpmml, FOREST, features)
    canary = _load("tree", "broken")

    def fail(_features):
        raise ScoringError("the runtime fell over")

    monkeypatch.setattr(canary, "score_batch", fail)
    scored = _score(records, models["forest"], {"wine": Challengers(canary=canary, canary_weight_bp=10_000)})

    assert [(r.model_version, r.role, r.score) for r in scored.results] == [("forest-v", "champion", s) for s in forest]
    assert len(scored.comparisons) == len(records) and not scored.dead_letters
    for c in scored.comparisons:
        assert c.challenger.error == "scoring failed: the runtime fell over"
        assert (c.agree, c.delta, c.challenger.score) == (False, 0.0, 0.0) and not c.champion.error


def test_a_row_the_canary_cannot_take_keeps_the_champion_result_and_the_others_are_served(models, wine_data, jpmml):
    features = wine_data.features[:12].copy()
    features[3, wine.FEATURE_NAMES.index("alcohol")] = 1e300  # finite, but beyond float32: the TF canary's input
    records = _records(features)
    forest, _, _ = _jpmml(jpmml, FOREST, features)
    fit = [i for i in range(len(records)) if i != 3]
    tf_winners = np.argmax(_tf_session(features[fit]), axis=1)

    scored = _score(records, models["forest"], {"wine": Challengers(canary=models["tf"], canary_weight_bp=10_000)})

    assert not scored.dead_letters
    assert (scored.results[3].model_name, scored.results[3].role, scored.results[3].score) == (
        "forest",
        "champion",
        forest[3],
    )
    assert scored.comparisons[3].challenger.error.startswith("input out of range:")
    assert [(scored.results[i].model_name, scored.results[i].role) for i in fit] == [("tf", "canary")] * len(fit)
    np.testing.assert_array_equal([scored.results[i].score for i in fit], tf_winners)


def test_a_decoy_archives_every_record_as_decoded_with_where_it_was_read(models, wine_data):
    payloads = [encode_record(f"d{i}", row, ts=T0 + i) for i, row in enumerate(wine_data.features[:5])]
    entries = [
        Entry(T0 + i, "wine", Coordinates("wine-data", 2, 100 + i, None), payload, checked=True)
        for i, payload in enumerate(payloads)
    ]
    locations = Locations()
    records, letters, waiting = decode_entries(
        entries, SchemaRegistry(bundled_schemas()), ServingOptions(), T0 + 10, locations
    )
    assert len(records) == 5 and not letters and not waiting
    rivals = Challengers(shadows=(models["tf"],), canary=models["tree"], canary_weight_bp=0, decoy=True)
    before = now_ms()
    scored = _score(records, models["forest"], {"wine": rivals}, locations=locations)
    after = now_ms()

    assert [a.payload for a in scored.archive] == payloads
    for i, archived in enumerate(scored.archive):
        assert (archived.record_id, archived.data_type, archived.record_ts) == (f"d{i}", "wine", T0 + i)
        assert (archived.source_topic, archived.source_partition, archived.source_offset) == ("wine-data", 2, 100 + i)
        assert archived.champion_version == "forest-v" and list(archived.challenger_versions) == ["tf-v", "tree-v"]
        assert before <= archived.archived_at <= after
    assert all(r.role == "champion" for r in scored.results), "weight 0: the canary serves nothing"


def test_without_challengers_nothing_is_compared_or_archived_and_results_are_the_champions(models, wine_data, jpmml):
    features = wine_data.features[:30]
    records = _records(features)
    forest, _, _ = _jpmml(jpmml, FOREST, features)
    plain = _score(records, models["forest"])
    for challengers in ({}, {"wine": Challengers()}, {"beer": Challengers(shadows=(models["tf"],), decoy=True)}):
        scored = _score(records, models["forest"], challengers)
        assert not scored.comparisons and not scored.archive
        assert _without_durations(scored.results) == _without_durations(plain.results)
    assert [(r.model_version, r.role, r.score) for r in plain.results] == [("forest-v", "champion", s) for s in forest]


def test_challenge_leaves_the_given_results_alone(models, wine_data):
    records = _records(wine_data.features[:20])
    plain = _score(records, models["forest"]).results
    given = _without_durations(plain)
    features = wine_data.features[:20]
    outcome = challenge(
        "wine",
        models["forest"],
        records,
        features,
        plain,
        Challengers(canary=models["tree"], canary_weight_bp=10_000),
        0,
    )
    assert _without_durations(plain) == given and outcome.results is not plain
    assert all(r.role == "canary" for r in outcome.results)


@pytest.mark.parametrize(
    "settings",
    [{"canary_weight_bp": -1}, {"canary_weight_bp": 10_001}, {"tolerance": -0.1}, {"tolerance": float("nan")}],
)
def test_challengers_refuse_a_weight_or_tolerance_out_of_range(settings):
    with pytest.raises(ConfigError):
        Challengers(**settings)


def test_challengers_are_active_with_a_shadow_a_canary_or_a_decoy(models):
    assert not Challengers().active
    assert Challengers(shadows=(models["tf"],)).active and Challengers(decoy=True).active
    assert Challengers(canary=models["tree"]).active
