"""GET /audit/{record_id}: the results and model-events topics, handed as lists by an injected reader.

The scenario: v1 is accepted at 1,000 and serves; v2 (signed by ``ops-2026``) is
promoted at 5,000 and v1 retired. Record r-before (ts 4,000) was scored by v1,
r-after (ts 6,000) by v2. The expected answers are read off the scenario by hand.
"""

from __future__ import annotations

from fastapi.testclient import TestClient

from serving.kafka.reading import TopicReadError
from serving.kafka.settings import KafkaSettings
from serving.observability.monitor import Monitor
from serving.observability.service.app import create_app
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from tests.unit.observability.stub_service import StubStatsService

SHA1, SHA2 = "a1" * 32, "b2" * 32
EVENTS = [
    ModelEvent(kind=ModelEvent.ACCEPTED, name="linear", version="v1", data_type="wine", ts=1_000, sha256=SHA1),
    ModelEvent(
        kind=ModelEvent.ROLE_SET, name="tree", version="v2", data_type="wine", ts=2_000, role="shadow",
        sha256=SHA2, signed_by="ops-2026",
    ),
    ModelEvent(
        kind=ModelEvent.PROMOTED, name="tree", version="v2", data_type="wine", ts=5_000, role="champion",
        sha256=SHA2, signed_by="ops-2026", reason="operator",
    ),
    ModelEvent(kind=ModelEvent.RETIRED, name="linear", version="v1", data_type="wine", ts=5_000, sha256=SHA1),
]  # fmt: skip


def result(record_id: str, version: str, sha: str, ts: int, offset: int) -> ServingResult:
    return ServingResult(
        record_id=record_id, data_type="wine", model_name="linear" if version == "v1" else "tree",
        model_version=version, model_sha256=sha, record_ts=ts, score=5.0,
        source_topic="wine-in", source_partition=1, source_offset=offset,
    )  # fmt: skip


RESULTS = [result("r-before", "v1", SHA1, 4_000, 41), result("r-after", "v2", SHA2, 6_000, 42)]


class AuditStub(StubStatsService):
    """The stub service with topic names and a reader over lists; it records which topics were read."""

    def __init__(self, topics: dict[str, list], fail: Exception | None = None) -> None:
        super().__init__(Monitor())
        self.settings = KafkaSettings()
        self.read: list[str] = []
        self.fail = fail

        def read_topic(topic: str):
            self.read.append(topic)
            if self.fail is not None:
                raise self.fail
            return topics[topic]

        self.read_topic = read_topic


def client(results=RESULTS, events=EVENTS, extra: list | None = None, fail: Exception | None = None):
    names = KafkaSettings().topics
    topics = {
        names.results: [r.SerializeToString() for r in results] + (extra or []),
        names.model_events: [e.SerializeToString() for e in events],
    }
    stub = AuditStub(topics, fail)
    return TestClient(create_app(stub, manage=False)), stub


def test_a_record_scored_before_the_promotion_names_v1_and_its_retirement():
    http, stub = client()
    answer = http.get("/audit/r-before").json()
    assert set(stub.read) == {KafkaSettings().topics.results, KafkaSettings().topics.model_events}
    [scored] = answer["results"]
    assert (scored["model_name"], scored["model_version"], scored["model_sha256"], scored["role"]) == (
        "linear", "v1", SHA1, "champion",
    )  # fmt: skip
    assert scored["source"] == {"topic": "wine-in", "partition": 1, "offset": 41}
    assert (scored["deployed"]["kind"], scored["deployed"]["ts"]) == ("ACCEPTED", 1_000)
    # v2 took the champion role at 5,000 (the PROMOTED event ends v1's span first).
    assert scored["retired"]["ts"] == 5_000
    assert scored["signed_by"] == ""
    assert answer["skipped"] == 0


def test_a_record_scored_after_the_promotion_names_v2_and_its_signer():
    http, _ = client()
    [scored] = http.get("/audit/r-after").json()["results"]
    assert (scored["model_version"], scored["model_sha256"], scored["record_ts"]) == ("v2", SHA2, 6_000)
    assert (scored["deployed"]["kind"], scored["deployed"]["ts"], scored["deployed"]["reason"]) == (
        "PROMOTED", 5_000, "operator",
    )  # fmt: skip
    assert scored["retired"] is None
    assert scored["signed_by"] == "ops-2026"


def test_a_record_never_scored_is_404_with_one_line():
    http, _ = client(extra=[b"\xff\xff not a result", None])
    response = http.get("/audit/r-missing")
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "record not scored"
    assert "r-missing" in body["detail"] and "\n" not in body["detail"]


def test_undecodable_messages_are_skipped_and_counted():
    http, _ = client(extra=[b"\xff\xff not a result"])
    answer = http.get("/audit/r-after").json()
    assert (len(answer["results"]), answer["skipped"]) == (1, 1)


def test_a_topic_that_cannot_be_read_is_503():
    http, _ = client(fail=TopicReadError("cannot read serving-results: it does not exist"))
    response = http.get("/audit/r-after")
    assert response.status_code == 503
    assert response.json() == {"error": "topic unreadable", "detail": "cannot read serving-results: it does not exist"}
