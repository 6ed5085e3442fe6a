"""End to end: the dashboard tells the truth about a serving job fed at a known rate, with model swaps.

The stack of test_stats_e2e: a keyed serving job (``python -m flink_jobs.main``
on a MiniCluster, ``LocalJob``) on Kafka, the stats service reading its stats
and model events, the dashboard in headless Chromium. A generator publishes
wine records at 50/s (as the demo does) for over 40 s while models are swapped
3 times. Then, through the DOM:

* the records/s card is within 20 % of the rate the generator achieved over the last 20 s;
* no chart or timeline element leaves its SVG (bounding boxes), in every time window;
* no two labels of the swap timeline overlap (bounding boxes).

The screenshot goes to the test's tmp dir, and to ``$DASHBOARD_SCREENSHOT`` when set
(``DASHBOARD_SCREENSHOT=docs/dashboard.png`` refreshes the README's picture).
"""

from __future__ import annotations

import os
import threading
import time

import pytest

from serving.clock import now_ms
from serving.kafka.providers.data import publish_data
from serving.observability.service.app import ServerThread
from serving.observability.service.state import StatsService
from serving.ops.broker import free_port
from serving.ops.jobprocess import LocalJob
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import wine
from serving.testing import model_message
from tests.support.browser import choose_window, headless_chromium, outside_frame, overlapping, svg_boxes
from tests.support.http import get
from tests.support.kafka import send, wait_for_event
from tests.support.waiting import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]

RATE = 50.0
SWAP_EVERY_S = 10.0
#: (kind, version, name) in publication order: the first, then 3 swaps; the last has a long name.
MODELS = [
    ("linear", "v0", "linear"),
    ("tf", "v1", "tf"),
    ("tree", "v2", "tree"),
    ("linear", "v3", "linear-regression-of-wine-quality-with-a-long-descriptive-name"),
]
#: How long the last model serves before the card is read: its 10 s window is then all steady traffic.
LAST_MODEL_S = 15.0
#: The generator's rate is taken over this many seconds before the card is read.
RECENT_S = 20.0


class Generator(threading.Thread):
    """Publishes wine records at ``RATE`` until stopped, logging (monotonic time, records sent)."""

    def __init__(self, settings) -> None:
        super().__init__(name="dashboard-e2e-data", daemon=True)
        self.settings = settings
        self.stop_event = threading.Event()
        self.log: list[tuple[float, int]] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            publish_data(
                self.settings,
                wine.reference_csv(),
                rate=RATE,
                count=10_000_000,
                id_prefix="e2e-",
                progress=lambda n: self.log.append((time.monotonic(), n)),
                stop_event=self.stop_event,
            )
        except BaseException as exc:  # reported by the test
            self.error = exc

    def rate_over(self, seconds: float) -> tuple[float, float]:
        """Records/s over the last ``seconds`` of the log, and the span the log covers in all."""
        log = list(self.log)
        assert len(log) > 2, "the generator sent nothing"
        end_t, end_n = log[-1]
        start_t, start_n = next((t, n) for t, n in log if t >= end_t - seconds)
        return (end_n - start_n) / (end_t - start_t), end_t - log[0][0]


def serving_state(url: str) -> dict | None:
    status, body = get(f"{url}/state/wine")
    return body.get("model") if status == 200 else None


def test_the_dashboard_shows_the_true_rate_and_stays_in_its_frame(kafka_settings, tmp_path):
    server = ServerThread(StatsService(kafka_settings, metadata_interval=0.5)).start()
    job = LocalJob(kafka_settings, "keyed", tmp_path, parallelism=1, rest_port=free_port())
    generator = Generator(kafka_settings)
    try:
        kind, version, name = MODELS[0]
        send(kafka_settings, kafka_settings.topics.models, [model_message(kind, version, now_ms(), name=name)], b"wine")
        assert wait_for_event(kafka_settings, version).kind == ModelEvent.ACCEPTED  # the job is up
        generator.start()
        for kind, version, name in MODELS[1:]:
            time.sleep(SWAP_EVERY_S)
            message = model_message(kind, version, now_ms(), name=name)
            send(kafka_settings, kafka_settings.topics.models, [message], b"wine")
        last = MODELS[-1]

        def last_model_settled() -> bool:
            state = serving_state(server.url)
            return (
                state is not None
                and state["version"] == last[1]
                and state["since"] <= now_ms() - LAST_MODEL_S * 1000
                and state["rate_window_ms"] >= 10_000
            )

        wait_for(last_model_settled, f"model {last[1]} serving for {LAST_MODEL_S:.0f} s", timeout=120)
        assert generator.is_alive() and generator.error is None, generator.error
        history = get(f"{server.url}/history/wine")[1]["models"]
        assert [h["version"] for h in history if h["deployed_at"] is not None] == [v for _, v, _ in MODELS]

        with headless_chromium() as browser:
            browser.get(f"{server.url}/")

            def card_shows_last_model():
                name = browser.find_elements("css selector", "[data-testid=current-model-wine]")
                return name and name[0].get_attribute("title") == last[2]

            wait_for(card_shows_last_model, "the dashboard to show the last model", timeout=30)
            time.sleep(2)  # one more poll of the page, so the card is as fresh as the generator's log
            card = float(browser.find_element("css selector", "[data-testid=rate-wine]").get_attribute("data-value"))
            published, ran_s = generator.rate_over(RECENT_S)
            assert ran_s >= 40
            assert published == pytest.approx(RATE, rel=0.1), "the generator itself fell behind"
            assert card == pytest.approx(published, rel=0.2), (card, published, serving_state(server.url))

            for window in ("5 min", "1 h", "all"):
                choose_window(browser, window)
                charts = svg_boxes(browser, "svg.plot")
                assert sum(c["cls"] == "series" for c in charts) == 2, window
                assert [c for c in charts if outside_frame(c)] == [], window
                timeline = svg_boxes(browser, "svg.tl")
                assert [t for t in timeline if outside_frame(t)] == [], window
                labels = [t for t in timeline if t["tag"] == "text"]
                assert sum(t["cls"] == "swap-label" for t in labels) >= 2, window
                assert overlapping(labels) == [], window
            choose_window(browser, "5 min")
            browser.save_screenshot(str(tmp_path / "dashboard.png"))
            if os.environ.get("DASHBOARD_SCREENSHOT"):
                browser.save_screenshot(os.environ["DASHBOARD_SCREENSHOT"])
    finally:
        generator.stop_event.set()
        if generator.is_alive():
            generator.join(timeout=15)
        job.stop()
        server.stop()
