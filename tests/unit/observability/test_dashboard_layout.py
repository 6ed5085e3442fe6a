"""The dashboard's layout rules in headless Chromium, over an hour of synthetic demo-like stats (no Kafka).

A stub stats service serves what a Monitor made of the snapshots one keyed
instance of the demo emits (50 records/s, a swap every 20 s, every third model
with a long name). The rules are checked through the DOM:

* no element of a chart leaves its SVG (bounding boxes), even with a value
  below 0 and an outlier handed to the page;
* no two labels of the swap timeline overlap (bounding boxes);
* the time window selector (5 min default, 1 h, all) sets what the charts and timeline span;
* a long model name stays on one line, cut with an ellipsis, its title the whole name;
* the records/s card says 50 (the synthetic rate);
* the page loads nothing from elsewhere.

``python -m tests.unit.observability.stub_service PATH [WINDOW]`` saves a screenshot of the same page.
"""

from __future__ import annotations

import re
import time

import pytest

from serving.observability.service.app import ServerThread, dashboard_html
from serving.observability.service.state import Overview
from serving.observability.views import SeriesPoint
from tests.support.browser import choose_window, headless_chromium, outside_frame, overlapping, svg_boxes
from tests.unit.observability.stub_service import LONG_NAME, StubStatsService, demo_like_monitor


def with_bad_points(overview: Overview) -> Overview:
    """A latency below 0 and a throughput outlier in the last minute: the page must keep them in frame."""
    series = overview.data_types["wine"].series
    t = series[-1].t
    series.insert(-3, SeriesPoint(t=t - 30_000, usage=0, records_per_second=5_000.0, mean_duration_ns=-5e6))
    series.sort(key=lambda p: p.t)
    return overview


@pytest.fixture(scope="module")
def page():
    monitor = demo_like_monitor(seconds=3615)  # the 181st model, with the long name, has served 15 s
    server = ServerThread(StubStatsService(monitor, mangle=with_bad_points)).start()
    try:
        with headless_chromium() as browser:
            browser.get(f"{server.url}/")
            wait_until(browser, lambda: browser.find_elements("css selector", "svg.throughput path.series"))
            yield browser, monitor
    finally:
        server.stop()


def wait_until(browser, condition, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {condition}")


@pytest.mark.parametrize("window", ["5 min", "1 h", "all"])
def test_charts_stay_in_their_frame_and_swap_labels_never_overlap(page, window):
    browser, _ = page
    choose_window(browser, window)
    charts = svg_boxes(browser, "svg.plot")
    assert {c["svg"] for c in charts} == {"chart-throughput-wine", "chart-latency-wine"}
    assert sum(c["cls"] == "series" for c in charts) == 2
    assert [c for c in charts if outside_frame(c)] == []
    timeline = svg_boxes(browser, "svg.tl")
    labels = [t for t in timeline if t["tag"] == "text"]
    assert [t for t in timeline if outside_frame(t)] == []
    assert sum(t["cls"] == "swap-label" for t in labels) >= 2
    assert overlapping(labels) == []


def test_the_window_selector_sets_what_the_charts_span(page):
    browser, _ = page
    swaps = {}
    for window in ("5 min", "1 h", "all"):
        choose_window(browser, window)
        lines = svg_boxes(browser, "svg.throughput")
        swaps[window] = sum(c["cls"] == "swap" for c in lines)
    # A swap every 20 s: 15 in the last 5 min (14 to 16 at its edges); 180 in the hour; 180 (+ the first) in all.
    assert 14 <= swaps["5 min"] <= 16
    assert 179 <= swaps["1 h"] <= 181 and swaps["1 h"] <= swaps["all"] <= 181
    choose_window(browser, "5 min")
    assert browser.find_element("css selector", "button[data-window='300000']").get_attribute("aria-pressed") == "true"


def test_the_default_window_is_five_minutes(page):
    browser, _ = page
    browser.refresh()
    wait_until(browser, lambda: browser.find_elements("css selector", "svg.throughput path.series"))
    pressed = browser.find_elements("css selector", ".window button[aria-pressed='true']")
    assert [b.text for b in pressed] == ["5 min"]


def test_a_long_model_name_is_cut_with_a_tooltip_not_wrapped(page):
    browser, monitor = page
    name = wait_until(
        browser,
        lambda: next(
            (e for e in browser.find_elements("css selector", "td.name") if e.get_attribute("title") == LONG_NAME),
            None,
        ),
    )
    assert name is not None
    fits = browser.execute_script(
        "const e = arguments[0]; const s = getComputedStyle(e);"
        "return [e.scrollWidth > e.clientWidth, s.textOverflow, s.whiteSpace];",
        name,
    )
    assert fits == [True, "ellipsis", "nowrap"]
    # The header: the serving model has the long name.
    assert monitor.state("wine").model.name == LONG_NAME
    header = browser.find_element("css selector", "[data-testid=current-model-wine]")
    assert header.get_attribute("title") == LONG_NAME and header.text == LONG_NAME
    style = browser.execute_script(
        "const e = arguments[0]; const s = getComputedStyle(e);"
        "return [e.scrollWidth > e.clientWidth, s.textOverflow, s.whiteSpace, s.overflow];",
        header,
    )
    assert style == [True, "ellipsis", "nowrap", "hidden"]
    height = browser.execute_script("return arguments[0].getBoundingClientRect().height", header)
    line = browser.execute_script("return parseFloat(getComputedStyle(arguments[0]).lineHeight)", header)
    assert height <= line + 1  # one line


def test_the_card_shows_the_synthetic_rate(page):
    browser, monitor = page
    card = browser.find_element("css selector", "[data-testid=rate-wine]")
    shown = float(card.get_attribute("data-value"))
    assert shown == pytest.approx(monitor.state("wine").model.records_per_second)
    assert shown == pytest.approx(50.0, rel=0.2)
    assert float(card.text.replace(",", "")) == pytest.approx(shown, abs=0.05)


def test_the_page_is_self_contained():
    html = dashboard_html()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html, re.IGNORECASE)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:)?//", html, re.IGNORECASE)
    assert "<canvas" not in html  # charts are SVG, so their geometry is in the DOM
