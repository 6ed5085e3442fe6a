"""End to end: a serving job on Kafka, a model swap, and the stats service answering about it.

The job runs as ``python -m flink_jobs.main`` (``serving.ops.jobprocess.LocalJob``);
the stats service reads the stats and model-events topics the job writes; the
dashboard is rendered in headless Chromium.
"""

from __future__ import annotations

import collections
import time
import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.clock import now_ms
from serving.kafka.clients import consumer
from serving.observability.messages import stats_key
from serving.observability.service.app import ServerThread
from serving.observability.service.state import StatsService
from serving.ops.broker import free_port
from serving.ops.jobprocess import LocalJob
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.model_stats_pb2 import ModelStats
from serving.records.wine import encode_record
from serving.testing import model_message as model
from tests.support.browser import headless_chromium
from tests.support.http import get
from tests.support.kafka import results, send, wait_for_event
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.flink]

FIRST, SECOND = 300, 300


def keyed_stats_records(settings) -> list[tuple[bytes, bytes]]:
    """(key, value) of every committed record on the stats topic."""
    reader = consumer(settings, group_id=f"keys-{uuid.uuid4().hex[:8]}")
    reader.subscribe([settings.topics.stats])
    records = []
    idle = time.monotonic()
    try:
        while time.monotonic() - idle < 5:
            message = reader.poll(0.5)
            if message is None or message.error():
                continue
            records.append((message.key(), message.value()))
            idle = time.monotonic()
    finally:
        reader.close()
    return records


def flink_metrics(rest: str) -> dict[str, float | str]:
    """Every ``modelserving.*`` metric of the running job, summed over operators and subtasks."""
    jobs = [j["id"] for j in get(f"{rest}/jobs")[1]["jobs"] if j["status"] == "RUNNING"]
    totals: dict[str, float | str] = {}
    for job_id in jobs:
        for vertex in get(f"{rest}/jobs/{job_id}")[1]["vertices"]:
            base = f"{rest}/jobs/{job_id}/vertices/{vertex['id']}/metrics"
            ids = [m["id"] for m in get(base)[1] if ".modelserving." in m["id"]]
            if not ids:
                continue
            for metric in get(f"{base}?get={','.join(ids)}")[1]:
                name = metric["id"].split(".modelserving.", 1)[1]
                try:
                    totals[name] = float(totals.get(name, 0)) + float(metric["value"])
                except ValueError:
                    totals[name] = metric["value"]  # a distribution's summary
    return totals


def stats_topic_policy(settings) -> str:
    from confluent_kafka.admin import AdminClient, ConfigResource

    admin = AdminClient(settings.librdkafka_config())
    resource = ConfigResource(ConfigResource.Type.TOPIC, settings.topics.stats)
    configs = admin.describe_configs([resource])[resource].result(30)
    return configs["cleanup.policy"].value


def test_after_a_swap_the_stats_service_shows_the_new_model(kafka_settings, tmp_path, wine_data):
    server = ServerThread(StatsService(kafka_settings, metadata_interval=0.5)).start()
    job = LocalJob(
        kafka_settings, "keyed", tmp_path, parallelism=1, rest_port=free_port(), job_args=("--stats-every-seconds", "1")
    )  # the last stats soon after the last record
    try:
        send(kafka_settings, kafka_settings.topics.models, [model("linear", "A", now_ms())], key=b"wine")
        assert wait_for_event(kafka_settings, "A").kind == ModelEvent.ACCEPTED
        rows = wine_data.features
        send(
            kafka_settings,
            kafka_settings.topics.data,
            [encode_record(str(i), rows[i], ts=now_ms()) for i in range(FIRST)],
        )
        time.sleep(0.2)  # later records must carry later timestamps than model B
        swap_time = now_ms()
        send(kafka_settings, kafka_settings.topics.models, [model("tf", "B", now_ms())], key=b"wine")
        assert wait_for_event(kafka_settings, "B").kind == ModelEvent.ACCEPTED
        send(
            kafka_settings,
            kafka_settings.topics.data,
            [encode_record(str(i), rows[i], ts=now_ms()) for i in range(FIRST, FIRST + SECOND)],
        )
        got = results(kafka_settings, FIRST + SECOND)
        per_version = collections.Counter(r.model_version for r in got)
        assert set(per_version) == {"A", "B"}

        # The job sends the last stats once they are due by time (stats_every_seconds, 1 s here), with no more data.
        def shows_b() -> bool:
            status, body = get(f"{server.url}/state/wine")
            current = body.get("model") if status == 200 else None
            return current is not None and (current["version"], current["usage"]) == ("B", per_version["B"])

        wait_for(shows_b, "/state/wine to show model B with every record it scored", timeout=120)
        state = get(f"{server.url}/state/wine")[1]["model"]
        assert state["name"] == "tf" and state["status"] == "serving"
        assert state["since"] >= swap_time
        assert state["mean_duration_ns"] > 0 and state["min_duration_ns"] <= state["max_duration_ns"]

        status, history = get(f"{server.url}/history/wine")
        assert status == 200
        entries = [(h["version"], h["status"], h["usage"]) for h in history["models"]]
        assert entries == [("A", "retired", per_version["A"]), ("B", "serving", per_version["B"])]
        assert history["models"][0]["deployed_at"] < history["models"][0]["retired_at"] == state["since"]

        status, text = get(f"{server.url}/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(text)}
        scored = {s.labels["version"]: s.value for s in families["modelserving_model_records_scored"].samples}
        assert scored == {"A": per_version["A"], "B": per_version["B"]}

        # The Python functions' Flink metrics, as Flink's REST API (and web UI) shows them.
        rest = f"http://127.0.0.1:{job.rest_port}"

        def counted() -> bool:
            metrics = flink_metrics(rest)
            return metrics.get("records_scored") == FIRST + SECOND and metrics.get("model_swaps") == 2

        wait_for(counted, "Flink metrics records_scored and model_swaps", timeout=60)
        metrics = flink_metrics(rest)
        assert metrics.get("dead_letters", 0) == 0
        assert any(name.startswith("scoring_time_ns") for name in metrics), metrics

        # The stats topic is compacted, and every record is keyed data_type/name/version/instance.
        assert stats_topic_policy(kafka_settings) == "compact"
        records = keyed_stats_records(kafka_settings)
        assert records and all(key == stats_key(ModelStats.FromString(value)) for key, value in records)

        with headless_chromium() as browser:
            from selenium.webdriver.common.by import By
            from selenium.webdriver.support.ui import WebDriverWait

            browser.get(f"{server.url}/")
            name = WebDriverWait(browser, 30).until(
                lambda d: (
                    d.find_element(By.CSS_SELECTOR, "[data-testid=current-model-wine]").text == "tf"
                    and d.find_element(By.CSS_SELECTOR, "[data-testid=current-model-wine]")
                )
            )
            assert name.text == "tf"
            browser.save_screenshot(str(tmp_path / "dashboard.png"))
    finally:
        job.stop()
        server.stop()
