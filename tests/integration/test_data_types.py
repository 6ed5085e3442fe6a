"""Any data type, on a real broker: schemas are data, and a running job serves new data types beside wine.

Iris comes as JSON with no id or time field (the record id is Kafka's
``topic/partition/offset``, event time the Kafka timestamp); loans, with
string categoricals, comes as Confluent-framed Avro whose schema names its
id and time fields, and its schema is published while the job runs. The
oracles are scikit-learn's own ``predict_proba``: in this venv for iris
(served as ONNX), in the sklearn2pmml side venv for loans (served as PMML).
"""

from __future__ import annotations

import collections
import io
import json
import struct
import time

import fastavro
import numpy as np
import pytest

from serving.clock import now_ms
from serving.core.model import ModelType
from serving.formats import descriptor_from_path
from serving.kafka.clients import create_topics
from serving.kafka.providers.schemas import publish_schema
from serving.ops.broker import free_port
from serving.ops.jobprocess import LocalJob
from serving.pb.data_type_pb2 import DataTypeSchema as SchemaMessage
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.schema import DataTypeSchema
from serving.records.wine import encode_record
from tests.support.kafka import read_all, send, send_tracked, wait_for_event
from tests.support.pmml_exports import export
from tests.support.reference import TF_GRAPH

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]

IRIS_FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS = {"type": "record", "name": "iris", "fields": [{"name": n, "type": "double"} for n in IRIS_FIELDS]}
#: The order the iris models take their inputs in: bound by name, not by position.
MODEL_ORDER = ["petal_width", "petal_length", "sepal_width", "sepal_length"]
LOANS = {
    "type": "record",
    "name": "loans",
    "modelserving.id": "loan_id",
    "modelserving.timestamp": "event_ms",
    "fields": [
        {"name": "loan_id", "type": "string"},
        {"name": "event_ms", "type": "long"},
        {"name": "purpose", "type": "string"},
        {"name": "income", "type": "double"},
        {"name": "region", "type": "string"},
        {"name": "years", "type": "double"},
    ],
}


class IrisModel:
    """A logistic regression on iris (strength ``c``), exported to ONNX; ``oracle`` is scikit-learn itself."""

    def __init__(self, tmp_path, c: float, version: str, feature_names: list[str] = MODEL_ORDER) -> None:
        import onnx
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        from sklearn.datasets import load_iris
        from sklearn.linear_model import LogisticRegression

        iris = load_iris(as_frame=True)
        frame = iris.frame.rename(columns=dict(zip(iris.feature_names, IRIS_FIELDS)))
        self.rows = frame[IRIS_FIELDS].to_dict(orient="records")
        labels = np.asarray(iris.target_names)[iris.target]
        self.oracle = LogisticRegression(C=c, max_iter=2000).fit(frame[MODEL_ORDER].to_numpy(), labels)
        # No ZipMap and no descriptor metadata: the job reads the class labels from the graph itself, and
        # the input names from the model's own metadata_props, where a data scientist leaves them.
        exported = convert_sklearn(
            self.oracle,
            initial_types=[("input", FloatTensorType([None, 4]))],
            options={id(self.oracle): {"zipmap": False}},
            target_opset=17,
        )
        onnx.helper.set_model_props(exported, {"feature_names": ",".join(feature_names)})
        path = tmp_path / f"iris-{version}.onnx"
        path.write_bytes(exported.SerializeToString())
        self.version = version
        self.descriptor = descriptor_from_path(path, ModelType.ONNX, data_type="iris", name="iris-lr", version=version)
        assert not self.descriptor.metadata

    def message(self) -> bytes:
        """The descriptor stamped now: records with a later event time are this model's."""
        self.descriptor.created_at = now_ms()
        return self.descriptor.SerializeToString()

    def expected(self, row: dict) -> dict[str, float]:
        """Label -> probability, as scikit-learn gives them for ``row``."""
        proba = self.oracle.predict_proba(np.asarray([[row[n] for n in MODEL_ORDER]]))[0]
        return dict(zip(self.oracle.classes_, proba))


def _settings_with_own_prefix(kafka_settings):
    """The test's settings with a data-topic prefix of its own (the broker is shared across tests)."""
    suffix = kafka_settings.group_id.rsplit("-", 1)[-1]
    return kafka_settings.model_copy(update={"data_topic_prefix": f"data-{suffix}."})


def _json(row: dict) -> bytes:
    return json.dumps(row).encode()


def _confluent_avro(schema: DataTypeSchema, record: dict) -> bytes:
    """Confluent framing by hand (magic 0, big-endian schema id) around fastavro's body: not the product's encoder."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(schema.avsc)), record)
    return b"\x00" + struct.pack(">I", schema.schema_id) + body.getvalue()


def _events(settings) -> list[ModelEvent]:
    return [ModelEvent.FromString(v) for v in read_all(settings, settings.topics.model_events, None, 5)]


def _wait_for_kind(settings, version: str, kind: int, timeout: float = 120) -> ModelEvent:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [e for e in _events(settings) if e.version == version and e.kind == kind]
        if found:
            return found[0]
    raise AssertionError(f"no {ModelEvent.Kind.Name(kind)} event for {version} within {timeout}s")


def _all_results(settings, expected: int) -> list[ServingResult]:
    read_all(settings, settings.topics.results, expected, timeout=180)
    time.sleep(3)  # a duplicate would arrive after the last expected result
    return [ServingResult.FromString(v) for v in read_all(settings, settings.topics.results, None, 10)]


def _assert_probabilities(result: ServingResult, expected: dict[str, float], atol: float) -> None:
    got = dict(zip(result.labels, result.probabilities))
    assert set(got) == set(expected), (result.record_id, got)
    for label, p in expected.items():
        assert abs(got[label] - p) <= atol, (result.record_id, label, got[label], p)


@pytest.mark.parametrize("job_name", ["keyed", "partitioned"])
def test_two_new_data_types_are_served_beside_wine_exactly_once(kafka_settings, tmp_path, job_name):
    settings = _settings_with_own_prefix(kafka_settings)
    iris_topic = settings.data_topic_prefix + "iris"
    create_topics(settings, {"iris": iris_topic}, 2)
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "iris.avsc").write_text(json.dumps(IRIS))
    loans_schema = DataTypeSchema.parse(LOANS)
    loans = export("logistic", tmp_path / "loans")
    iris_v1, iris_v2 = IrisModel(tmp_path, 1.0, "iris-1"), IrisModel(tmp_path, 0.05, "iris-2")
    loans_model = descriptor_from_path(loans.pmml, "pmml", data_type="loans", name="loans-lr", version="loans-1")
    wine = descriptor_from_path(TF_GRAPH, ModelType.TENSORFLOW, version="wine-A", name="tf")
    wine.created_at = now_ms()
    rows = iris_v1.rows
    job = LocalJob(
        settings, job_name, tmp_path / "job", parallelism=2, rest_port=free_port(), job_args=("--schemas", str(schemas))
    )
    try:
        send(settings, settings.topics.models, [wine.SerializeToString()], key=b"wine")
        send(settings, settings.topics.models, [iris_v1.message()], key=b"iris")
        assert wait_for_event(settings, "wine-A").kind == ModelEvent.ACCEPTED
        assert wait_for_event(settings, "iris-1").kind == ModelEvent.ACCEPTED
        wine_ids = [f"w-{i}" for i in range(40)]
        send(settings, settings.topics.data, [encode_record(i, np.full(11, 0.5), ts=now_ms()) for i in wine_ids])
        first = send_tracked(settings, iris_topic, [(_json(rows[i]), now_ms()) for i in range(0, 150, 2)])

        # Loans: its model comes before its schema and waits; the schema, published mid-run, admits both.
        loans_model.created_at = now_ms()
        send(settings, settings.topics.models, [loans_model.SerializeToString()], key=b"loans")
        assert wait_for_event(settings, "loans-1").kind == ModelEvent.AWAITING_SCHEMA
        loans_topic = publish_schema(settings, loans_schema)
        _wait_for_kind(settings, "loans-1", ModelEvent.ACCEPTED)
        send(settings, settings.topics.models, [iris_v2.message()], key=b"iris")
        assert wait_for_event(settings, "iris-2").kind == ModelEvent.ACCEPTED
        second = send_tracked(settings, iris_topic, [(_json(rows[i]), now_ms()) for i in range(1, 150, 2)])
        loan_rows = loans.rows[:100]
        loan_messages = [
            (_confluent_avro(loans_schema, {"loan_id": f"L{i}", "event_ms": now_ms(), **row}), now_ms())
            for i, row in enumerate(loan_rows)
        ]
        send_tracked(settings, loans_topic, loan_messages)
        send(
            settings,
            settings.topics.data,
            [encode_record(f"w-{i}", np.full(11, 0.5), ts=now_ms()) for i in range(40, 80)],
        )
        wine_ids += [f"w-{i}" for i in range(40, 80)]
        got = _all_results(settings, 80 + 150 + 100)
        restarts = job.restarts()
    finally:
        job.stop()

    counts = collections.Counter((r.data_type, r.record_id) for r in got)
    expected_ids = {("wine", i) for i in wine_ids} | {("iris", i) for i in first + second}
    expected_ids |= {("loans", f"L{i}") for i in range(100)}
    assert set(counts) == expected_ids, (
        f"lost {sorted(expected_ids - set(counts))[:5]}, extra {sorted(set(counts) - expected_ids)[:5]}"
    )
    assert max(counts.values()) == 1, "duplicates in committed results"
    assert restarts == 0
    by_id = {(r.data_type, r.record_id): r for r in got}
    assert {by_id["wine", i].model_version for i in wine_ids} == {"wine-A"}
    for ids, rows_sent, model in ((first, range(0, 150, 2), iris_v1), (second, range(1, 150, 2), iris_v2)):
        for record_id, row in zip(ids, rows_sent):
            result = by_id["iris", record_id]
            assert (result.model_name, result.model_version) == ("iris-lr", model.version), record_id
            _assert_probabilities(result, model.expected(rows[row]), atol=1e-5)  # ONNX computes in float32
    for i in range(100):
        result = by_id["loans", f"L{i}"]
        assert result.model_version == "loans-1"
        _assert_probabilities(result, dict(zip(loans.classes, loans.predict_proba[i])), atol=1e-9)


def test_bad_schemas_models_and_records_each_end_as_a_dead_letter_or_an_event(kafka_settings, tmp_path):
    """Every bad input is reported by name and nothing is lost: each record is one result or one dead letter."""
    settings = _settings_with_own_prefix(kafka_settings)
    iris_topic, fraud_topic = settings.data_topic_prefix + "iris", settings.data_topic_prefix + "fraud"
    create_topics(settings, {"iris": iris_topic, "fraud": fraud_topic}, 2)
    schemas = tmp_path / "schemas"
    schemas.mkdir()
    (schemas / "iris.avsc").write_text(json.dumps(IRIS))
    good = IrisModel(tmp_path, 1.0, "iris-1")
    blind = IrisModel(tmp_path, 1.0, "iris-colour", feature_names=["sepal_length", "sepal_width", "colour", "hue"])
    rows = good.rows
    not_avro = {**IRIS, "fields": [{"name": "sepal_length", "type": "decimal"}]}
    drops_a_field = {**IRIS, "fields": IRIS["fields"][:3]}
    bad_records = {
        "missing": (iris_topic, _json({k: v for k, v in rows[0].items() if k != "petal_width"})),
        "wrong type": (iris_topic, _json({**rows[1], "sepal_width": "wide"})),
        "not finite": (iris_topic, json.dumps({**rows[2], "petal_length": float("nan")}).encode()),
        "undecodable": (iris_topic, b"{this is not json"),
        "unknown type": (fraud_topic, _json({"amount": 12.5})),
    }
    # A record of a data type with no schema waits --max-hold-ms for one, then is a dead letter.
    args = ("--schemas", str(schemas), "--max-hold-ms", "3000")
    job = LocalJob(settings, "keyed", tmp_path / "job", rest_port=free_port(), job_args=args)
    try:
        send(settings, settings.topics.models, [good.message()], key=b"iris")
        assert wait_for_event(settings, "iris-1").kind == ModelEvent.ACCEPTED
        valid = send_tracked(settings, iris_topic, [(_json(rows[i]), now_ms()) for i in range(50)])
        for topic, payload in bad_records.values():
            send_tracked(settings, topic, [(payload, now_ms())])
        send(settings, settings.topics.models, [blind.message()], key=b"iris")
        assert wait_for_event(settings, "iris-colour").kind == ModelEvent.REJECTED
        for avsc, version in ((not_avro, "not-avro"), (drops_a_field, "drops-petal-width")):
            message = SchemaMessage(
                version=version, avro_schema=json.dumps(avsc), data_type="iris", created_at=now_ms()
            )
            send(settings, settings.topics.data_types, [message.SerializeToString()], key=b"iris")
            assert wait_for_event(settings, version).kind == ModelEvent.REJECTED
        valid += send_tracked(settings, iris_topic, [(_json(rows[i]), now_ms()) for i in range(50, 100)])
        got = _all_results(settings, len(valid))
        read_all(settings, settings.topics.dead_letters, len(bad_records) + 2, timeout=60)
        letters = [DeadLetter.FromString(v) for v in read_all(settings, settings.topics.dead_letters, None, 10)]
        events = _events(settings)
        restarts = job.restarts()
    finally:
        job.stop()

    counts = collections.Counter(r.record_id for r in got)
    assert set(counts) == set(valid) and max(counts.values()) == 1
    assert {r.model_version for r in got} == {"iris-1"}, "a rejected model or schema changed what serves"
    assert restarts == 0
    by_payload = {letter.payload: letter for letter in letters if letter.source != "model"}
    missing = by_payload[bad_records["missing"][1]]
    assert missing.reason == "missing feature" and "petal_width" in missing.detail
    wrong = by_payload[bad_records["wrong type"][1]]
    assert wrong.reason == "bad field" and "sepal_width" in wrong.detail
    nan = by_payload[bad_records["not finite"][1]]
    assert nan.reason == "bad field" and "petal_length" in nan.detail and "finite" in nan.detail
    assert by_payload[bad_records["undecodable"][1]].reason == "undecodable record"
    unknown = by_payload[bad_records["unknown type"][1]]
    assert unknown.reason == "unknown data type" and unknown.data_type == "fraud"
    assert all(letter.record_id.startswith(f"{iris_topic}/") for letter in map(by_payload.get, [
        bad_records[k][1] for k in ("missing", "wrong type", "not finite", "undecodable")
    ]))  # fmt: skip
    [blind_event] = [e for e in events if e.version == "iris-colour"]
    assert "colour" in blind_event.reason and "hue" in blind_event.reason
    [not_avro_event] = [e for e in events if e.version == "not-avro"]
    assert not_avro_event.subject == "schema" and "bad schema" in not_avro_event.reason
    [incompatible] = [e for e in events if e.version == "drops-petal-width"]
    assert incompatible.subject == "schema" and "incompatible schema" in incompatible.reason
    assert "petal_width" in incompatible.reason
    schema_letters = [d for d in letters if d.source == "schema"]
    assert sorted(
        json.loads(SchemaMessage.FromString(d.payload).avro_schema)["fields"].__len__() for d in schema_letters
    ) == [1, 3]
    assert len(letters) - len([d for d in letters if d.source == "model"]) == len(bad_records) + 2
