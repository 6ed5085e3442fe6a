"""The dashboard's card of an ensemble lists its members (wins, ok, late, errors), in headless Chromium.

A stub stats service (no Kafka) serves a monitor fed with the snapshots of
tests/unit/observability/test_member_counters.py: an ensemble of iris on two
instances, and a plain model of wine, whose card has no member table.
"""

from __future__ import annotations

import pytest

from serving.core.model import ModelType
from serving.observability.service.app import ServerThread
from serving.pb.model_stats_pb2 import ModelStats
from tests.support.browser import headless_chromium
from tests.unit.observability.stub_service import LONG_NAME, StubStatsService
from tests.unit.observability.test_dashboard_layout import wait_until
from tests.unit.observability.test_member_counters import ensemble_snap, two_instances_and_a_restart


@pytest.fixture(scope="module")
def page():
    monitor, _, _ = two_instances_and_a_restart()
    # A third member with a long name, on a third instance: 2 records, it failed on both.
    monitor.add_stats(ensemble_snap("bucket:2", 2, 2_800, [(LONG_NAME, "1", 0, 0, 0, 2), ("fast", "1", 2, 2, 0, 0)]))
    monitor.add_stats(
        ModelStats(name="lr", version="1", data_type="wine", model_type=ModelType.PMML, since=1_000, usage=5,
                   total_duration_ns=500, min_duration_ns=100, max_duration_ns=100, instance="key:wine",
                   emitted_at=2_000)
    )  # fmt: skip
    server = ServerThread(StubStatsService(monitor)).start()
    try:
        with headless_chromium() as browser:
            browser.get(f"{server.url}/")
            wait_until(browser, lambda: browser.find_elements("css selector", "[data-testid=members-iris] tbody tr"))
            yield browser
    finally:
        server.stop()


def test_the_ensemble_card_lists_each_member_with_its_counters(page):
    rows = page.find_elements("css selector", "[data-testid=members-iris] tbody tr")
    cells = [
        [td.get_attribute("textContent").strip() for td in row.find_elements("css selector", "td")] for row in rows
    ]
    # bucket:0 + bucket:1 (test_member_counters) + bucket:2, by hand: wins, ok, late, errors.
    assert cells == [
        ["smart", "2", "4", "7", "2", "0"],
        ["fast", "1", "7", "11", "0", "0"],
        [LONG_NAME, "1", "0", "0", "0", "2"],
    ]
    headers = page.find_elements("css selector", "[data-testid=members-iris] th")
    assert [h.get_attribute("textContent") for h in headers] == ["member", "version", "wins", "ok", "late", "errors"]


def test_a_long_member_name_is_cut_with_a_tooltip(page):
    [name] = [
        td
        for td in page.find_elements("css selector", "[data-testid=members-iris] td.name")
        if td.get_attribute("title") == LONG_NAME
    ]
    style = page.execute_script(
        "const e = arguments[0]; const s = getComputedStyle(e);"
        "return [e.scrollWidth > e.clientWidth, s.textOverflow, s.whiteSpace];",
        name,
    )
    assert style == [True, "ellipsis", "nowrap"]


def test_a_plain_models_card_has_no_member_table(page):
    assert page.find_elements("css selector", "[data-testid=current-model-wine]")
    assert page.find_elements("css selector", "#type-wine .members") == []
    assert len(page.find_elements("css selector", ".current .members")) == 1
