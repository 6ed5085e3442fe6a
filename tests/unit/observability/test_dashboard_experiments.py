"""The dashboard's Experiments panel, fed by /experiments, in headless Chromium (a stub service, no Kafka).

The monitor is test_experiments.py's: the pair wine v1/v2 counted by two buckets
(1,000 records, 960 agreements, errors 2 / 8), recommended for promotion.
"""

from __future__ import annotations

import pytest
from scipy.stats import binomtest

from serving.observability.monitor import Monitor
from serving.observability.service.app import ServerThread
from serving.pb.model_event_pb2 import ModelEvent
from tests.support.browser import headless_chromium
from tests.unit.observability.stub_service import StubStatsService
from tests.unit.observability.test_dashboard_layout import wait_until
from tests.unit.observability.test_experiments import fed_monitor

ROW = "[data-testid=experiment-wine-v1-v2]"


def cells(browser) -> list[str]:
    return [td.get_attribute("textContent").strip() for td in browser.find_elements("css selector", f"{ROW} td")]


@pytest.fixture(scope="module")
def page():
    monitor = fed_monitor()
    monitor.add_event(
        ModelEvent(kind=ModelEvent.PROMOTE_RECOMMENDED, data_type="wine", version="v2", previous_version="v1", ts=4_100)
    )
    server = ServerThread(StubStatsService(monitor)).start()
    try:
        with headless_chromium() as browser:
            browser.get(f"{server.url}/")
            wait_until(browser, lambda: browser.find_elements("css selector", ROW))
            yield browser
    finally:
        server.stop()


def test_the_panel_shows_the_pair_merged_across_instances(page):
    row = cells(page)
    wilson = binomtest(960, 1000).proportion_ci(0.95, method="wilson").low
    assert row[:4] == ["wine", "v1", "v2", "shadow"]
    assert "".join(c for c in row[4] if c.isdigit()) == "1000"  # grouped as the browser's locale does
    assert row[5:7] == ["96.0 %", f"{100 * wilson:.1f} %"]
    assert row[8:10] == ["0.9", "2 / 8"]  # p95 |delta|: the higher instance's; errors champion / challenger
    assert row[10].startswith("yes")
    assert page.find_element("css selector", "[data-testid=experiments]").is_displayed()


def test_the_panel_is_hidden_without_experiments():
    monitor = Monitor()
    server = ServerThread(StubStatsService(monitor)).start()
    try:
        with headless_chromium() as browser:
            browser.get(f"{server.url}/")
            wait_until(browser, lambda: browser.execute_script("return document.getElementById('updated').textContent"))
            panel = browser.find_element("css selector", "[data-testid=experiments]")
            assert not panel.is_displayed()
    finally:
        server.stop()
