"""The stats service on a real broker, fed with stats and model events these tests produce themselves."""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.cli import main as cli_main
from serving.core.model import ModelType
from serving.kafka.clients import ensure_topics, producer
from serving.kafka.settings import KafkaSettings, Topics
from serving.observability.messages import event_key, stats_key
from serving.observability.service.app import ServerThread
from serving.observability.service.state import StatsService
from serving.ops.broker import LocalBroker, free_port
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from tests.support.http import get
from tests.support.waiting import wait_for

pytestmark = pytest.mark.kafka


def stats(version, usage, *, name="linear", since=1_000, emitted_at=None, instance="key:wine") -> ModelStats:
    return ModelStats(
        name=name,
        version=version,
        data_type="wine",
        model_type=ModelType.PMML,
        since=since,
        usage=usage,
        total_duration_ns=1_000 * usage,
        min_duration_ns=500 if usage else 0,
        max_duration_ns=2_000 if usage else 0,
        instance=instance,
        emitted_at=emitted_at or since + 10 * usage + 1,
    )


def accepted(version, *, name="linear", ts=900) -> ModelEvent:
    return ModelEvent(kind=ModelEvent.ACCEPTED, name=name, version=version, data_type="wine", ts=ts)


def send(settings: KafkaSettings, stats_messages=(), events=(), raw_stats=(), raw_events=()) -> None:
    """Produce and wait for every acknowledgement (the stats topic is compacted: every record needs a key)."""
    out = producer(settings)
    errors = []

    def produce(topic: str, value: bytes, key: bytes) -> None:
        out.produce(topic, value, key=key, on_delivery=lambda err, _msg: errors.append(err) if err else None)

    for m in stats_messages:
        produce(settings.topics.stats, m.SerializeToString(), stats_key(m))
    for e in events:
        produce(settings.topics.model_events, e.SerializeToString(), event_key(e))
    for raw in raw_stats:
        produce(settings.topics.stats, raw, b"garbage")
    for raw in raw_events:
        produce(settings.topics.model_events, raw, b"garbage")
    assert out.flush(30) == 0
    assert not errors, errors


def serving_model(url: str) -> tuple | None:
    status, body = get(f"{url}/state/wine")
    if status != 200 or body["model"] is None:
        return None
    return body["model"]["name"], body["model"]["version"], body["model"]["usage"]


@pytest.fixture
def service_url(kafka_settings):
    server = ServerThread(StatsService(kafka_settings, metadata_interval=0.5)).start()
    try:
        yield server.url
    finally:
        server.stop()


def test_models_state_history_and_metrics_from_the_topics(kafka_settings, service_url):
    send(
        kafka_settings,
        events=[accepted("A", ts=900), accepted("B", name="tf", ts=4_900)],
        stats_messages=[
            stats("A", 0),
            stats("A", 600, emitted_at=3_000),
            stats("B", 0, name="tf", since=5_000),
            stats("B", 400, name="tf", since=5_000, instance="key:wine"),
        ],
        raw_stats=[b"\xff\x00 not stats", b""],
        raw_events=[b"\x08\x63"],
    )
    send(kafka_settings, events=[ModelEvent(kind=ModelEvent.REJECTED, name="broken", version="Z", data_type="wine",
                                            ts=6_000, reason="corrupt model: truncated")])  # fmt: skip
    wait_for(lambda: serving_model(service_url) == ("tf", "B", 400), "model B in /state/wine")

    status, state = get(f"{service_url}/state/wine")
    assert status == 200
    model = state["model"]
    assert model["since"] == 5_000 and model["status"] == "serving" and model["model_type"] == "PMML"
    assert (model["min_duration_ns"], model["max_duration_ns"], model["mean_duration_ns"]) == (500, 2_000, 1_000)
    assert model["records_per_second"] > 0

    wait_for(lambda: len(get(f"{service_url}/models")[1]["models"]) == 3, "three models")
    status, models = get(f"{service_url}/models")
    assert status == 200
    by_version = {m["version"]: m for m in models["models"]}
    assert by_version["A"]["status"] == "retired" and by_version["A"]["retired_at"] == 5_000
    assert by_version["B"]["status"] == "serving" and by_version["B"]["since"] == 5_000
    assert by_version["Z"]["status"] == "rejected" and by_version["Z"]["reason"] == "corrupt model: truncated"
    assert models["kafka"]["ok"] is True

    status, history = get(f"{service_url}/history/wine")
    assert status == 200
    assert [(h["version"], h["deployed_at"], h["retired_at"], h["usage"]) for h in history["models"]] == [
        ("A", 1_000, 5_000, 600),
        ("B", 5_000, None, 400),
        ("Z", None, None, 0),
    ]
    _, at = get(f"{service_url}/history/wine?at=4999")
    assert [h["version"] for h in at["models"]] == ["A"]

    def metric_families() -> dict:
        status, text = get(f"{service_url}/metrics")
        assert status == 200
        return {f.name: f for f in text_string_to_metric_families(text)}

    def malformed_counts() -> dict:
        return {s.labels["topic"]: s.value for s in metric_families()["modelserving_malformed_messages"].samples}

    # The garbage has a key of its own, so it may sit on a partition read later than the models'.
    wait_for(lambda: malformed_counts() == {"stats": 2, "model_events": 1}, "the malformed messages counted")
    families = metric_families()
    scored = {s.labels["version"]: s.value for s in families["modelserving_model_records_scored"].samples}
    assert scored == {"A": 600, "B": 400, "Z": 0}
    assert families["modelserving_kafka_up"].samples[0].value == 1
    serving = {s.labels["version"]: s.value for s in families["modelserving_model_serving"].samples}
    assert serving == {"A": 0, "B": 1, "Z": 0}


def test_unknown_data_type_is_a_404_with_a_json_error(kafka_settings, service_url):
    send(kafka_settings, stats_messages=[stats("A", 1)])
    wait_for(lambda: serving_model(service_url) is not None, "stats")
    for path in ("/state/beer", "/history/beer", "/series/beer"):
        status, body = get(service_url + path)
        assert status == 404, path
        assert body["error"] == "unknown data type" and "beer" in body["detail"]


def test_only_committed_stats_count(kafka_settings, service_url):
    tx = producer(kafka_settings, **{"transactional.id": f"aborted-{uuid.uuid4().hex[:6]}"})
    tx.init_transactions(30)
    tx.begin_transaction()
    ghost = stats("GHOST", 999, name="ghost")
    tx.produce(kafka_settings.topics.stats, ghost.SerializeToString(), key=stats_key(ghost))
    tx.flush(30)
    tx.abort_transaction(30)
    send(kafka_settings, stats_messages=[stats("A", 7)])
    wait_for(lambda: serving_model(service_url) == ("linear", "A", 7), "the committed stats")
    assert [m["version"] for m in get(f"{service_url}/models")[1]["models"]] == ["A"]


def test_openapi_schema_dashboard_and_health(service_url):
    status, schema = get(f"{service_url}/openapi.json")
    assert status == 200
    assert {"/models", "/state/{data_type}", "/history/{data_type}", "/metrics"} <= set(schema["paths"])
    status, page = get(f"{service_url}/")
    assert status == 200 and "current-model-" in page and "<svg" in page
    assert "http://" not in page and "https://" not in page  # self-contained: no CDN
    status, health = get(f"{service_url}/health")
    assert status == 200 and health["status"] in ("ok", "degraded")


def test_topics_that_do_not_exist_yet_fill_in_once_created(broker):
    suffix = uuid.uuid4().hex[:8]
    settings = KafkaSettings.load(
        bootstrap_servers=broker.bootstrap,
        topics=Topics(**{role: f"{name}-{suffix}" for role, name in Topics().all().items()}),
        group_id=f"late-{suffix}",
    )
    server = ServerThread(StatsService(settings, metadata_interval=0.5)).start()
    try:
        wait_for(lambda: get(f"{server.url}/models")[0] == 200, "the service reaching Kafka")
        _, models = get(f"{server.url}/models")
        assert models["models"] == []
        assert set(models["kafka"]["missing_topics"]) == {settings.topics.stats, settings.topics.model_events}
        ensure_topics(settings)
        send(settings, stats_messages=[stats("A", 42)], events=[accepted("A")])
        wait_for(lambda: serving_model(server.url) == ("linear", "A", 42), "stats on the new topic")
        assert get(f"{server.url}/models")[1]["kafka"]["missing_topics"] == []
    finally:
        server.stop()


def test_kafka_unreachable_is_a_503_and_the_service_recovers(tmp_path):
    port = free_port()
    settings = KafkaSettings.load(bootstrap_servers=f"127.0.0.1:{port}", group_id="down")
    local = LocalBroker(state_dir=tmp_path / "kafka")
    server = ServerThread(StatsService(settings, metadata_interval=0.5)).start()
    try:
        # No broker yet: the service is up, and says why it cannot answer.
        wait_for(lambda: get(f"{server.url}/models")[1].get("detail", "") != "not connected yet", "a first try")
        status, body = get(f"{server.url}/models")
        assert status == 503
        assert body["error"] == "kafka unreachable" and f"127.0.0.1:{port}" in body["detail"]
        assert get(f"{server.url}/health")[1]["status"] == "degraded"
        families = {f.name: f for f in text_string_to_metric_families(get(f"{server.url}/metrics")[1])}
        assert families["modelserving_kafka_up"].samples[0].value == 0

        # The broker comes up: the service fills in.
        local.start(port=port)
        ensure_topics(settings)
        send(settings, stats_messages=[stats("A", 10)])
        wait_for(lambda: serving_model(server.url) == ("linear", "A", 10), "stats once Kafka is up")

        # It goes away: 503 again, with the last state kept for when it is back.
        local.stop()
        wait_for(lambda: get(f"{server.url}/models")[0] == 503, "a 503 while the broker is down")
        assert get(f"{server.url}/overview")[1]["data_types"]["wine"]["state"]["model"]["usage"] == 10

        # It comes back: the service carries on reading where it was.
        local.start(port=port)
        send(settings, stats_messages=[stats("A", 25)])
        wait_for(lambda: serving_model(server.url) == ("linear", "A", 25), "new stats after the broker is back")
    finally:
        server.stop()
        local.stop()


def test_the_stats_command_prints_tables(kafka_settings, service_url, capsys):
    send(kafka_settings, stats_messages=[stats("A", 600), stats("B", 5, name="tf", since=5_000)])
    # The two snapshots have different keys, so they may sit on different partitions: wait for both.
    wait_for(
        lambda: (
            serving_model(service_url) == ("tf", "B", 5) and get(f"{service_url}/state/wine")[1]["models_known"] == 2
        ),
        "both stats snapshots",
    )
    assert cli_main(["stats", "--url", service_url]) == 0
    out = capsys.readouterr().out
    assert "linear" in out and "tf" in out and "retired" in out and "serving" in out
    assert cli_main(["stats", "--url", service_url, "--data-type", "wine"]) == 0
    out = capsys.readouterr().out
    assert "serving wine" in out and "history of wine" in out
    assert cli_main(["stats", "--url", service_url, "--data-type", "beer"]) == 1
    assert "unknown data type 'beer'" in capsys.readouterr().err
