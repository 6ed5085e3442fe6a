"""Provenance (issue 17): a result names the artifact's SHA-256, its role, and where its record was read.

The SHA-256 is computed here with hashlib from the reference artifact file;
the coordinates are the ones the test hands the decoder.
"""

from __future__ import annotations

import hashlib

import pytest

from serving.codecs.outputs import results_for
from serving.core.entries import Entry, decode_entry, encode_entry
from serving.core.scoring import Locations, decode_data, decode_entries, score_due
from serving.formats import load_model, parse_descriptor
from serving.records import bundled_schemas, wine
from serving.records.schema import SchemaRegistry
from serving.records.wine import decode_record, encode_record
from serving.records.wire import JSON, NOWHERE, Coordinates, DataRecord, encode
from serving.settings import ServingOptions
from serving.testing import REFERENCE_MODELS, T0, model_message

REGISTRY = SchemaRegistry(bundled_schemas())
SCHEMAS = {s.data_type: s for s in bundled_schemas()}
OPTIONS = ServingOptions()


@pytest.fixture(scope="module")
def forest():
    model = load_model(parse_descriptor(model_message("forest", "f1", T0)))
    yield model
    model.close()


@pytest.fixture(scope="module")
def forest_sha256() -> str:
    return hashlib.sha256(REFERENCE_MODELS["forest"][0].read_bytes()).hexdigest()


def _score(records, model, locations=None):
    scored = score_due(records, {"wine": [(0, model)]}, SCHEMAS, hold=False, max_held=0, locations=locations)
    assert not scored.dead_letters
    return scored.results


def _where(result) -> tuple[str, int, int]:
    return result.source_topic, result.source_partition, result.source_offset


def test_a_decoded_record_s_result_names_the_artifact_and_where_the_record_was_read(forest, forest_sha256, wine_data):
    values = dict(zip(wine.RECORD_FIELDS, map(float, wine_data.features[0])), id="j0", ts=T0)
    payload = encode(values, SCHEMAS["wine"], JSON)
    record = decode_data(payload, OPTIONS, "wine", REGISTRY, Coordinates("wine-json", 4, 981, None))
    assert isinstance(record, DataRecord)

    (result,) = _score([record], forest)

    assert (result.model_sha256, result.role, result.record_id) == (forest_sha256, "champion", "j0")
    assert _where(result) == ("wine-json", 4, 981)


def test_wine_records_get_their_entries_coordinates_through_locations_and_keep_their_bytes(
    forest, forest_sha256, wine_data
):
    payloads = [encode_record(f"w{i}", row, ts=T0 + i) for i, row in enumerate(wine_data.features[:3])]
    buffered = Entry(T0, "wine", Coordinates("wine-data", 1, 70, None), payloads[0], checked=False)
    fast = Entry(T0 + 1, "wine", Coordinates("wine-data", 0, 5, None), payloads[1], True, decode_record(payloads[1]))
    kept_short = decode_entry(encode_entry(fast))  # the short state format keeps the coordinates too
    kept_short = Entry(T0 + 2, "wine", kept_short.where, payloads[2], True, decode_record(payloads[2]))
    locations = Locations()
    records, letters, waiting = decode_entries([buffered, fast, kept_short], REGISTRY, OPTIONS, T0 + 10, locations)
    assert len(records) == 3 and not letters and not waiting

    results = _score(records, forest, locations)

    assert [_where(r) for r in results] == [("wine-data", 1, 70), ("wine-data", 0, 5), ("wine-data", 0, 5)]
    assert all(r.model_sha256 == forest_sha256 and r.role == "champion" for r in results)
    assert [r.SerializeToString() for r in records] == payloads, "the records' wire content is unchanged"
    assert [_where(r) for r in _score(records, forest)] == [("", 0, 0)] * 3, "without locations: not known"


def test_results_for_takes_coordinates_alongside_the_records(forest, forest_sha256, wine_data):
    records = [decode_record(encode_record(f"x{i}", row, ts=T0)) for i, row in enumerate(wine_data.features[:3])]
    scores = forest.score_batch(wine_data.features[:3])
    where = [Coordinates("a", 0, 0, None), NOWHERE, Coordinates("", 0, 12, None)]  # the last: a file's row 12

    results = results_for(forest, records, scores, where)

    assert [_where(r) for r in results] == [("a", 0, 0), ("", 0, 0), ("", 0, 12)]
    assert [r.model_sha256 for r in results] == [forest_sha256] * 3
    assert [r.role for r in results_for(forest, records, scores)] == ["champion"] * 3
