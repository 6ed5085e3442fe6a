"""Headless Chromium (Debian's ``chromium`` and ``chromium-driver``) driven by Selenium; nothing is downloaded."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
)


@contextlib.contextmanager
def headless_chromium() -> Iterator:
    """A Selenium ``WebDriver`` on headless Chromium with a fresh profile; skips the test without Chromium."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        message = "needs Debian's chromium and chromium-driver (make browser)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them (make test runs make browser): never skip there
        pytest.skip(message)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            yield driver
        finally:
            driver.quit()


# Every drawn element of the SVGs matching a selector, with its box and its SVG's box (client pixels).
_BOXES_JS = """
const out = [];
for (const svg of document.querySelectorAll(arguments[0])) {
  const frame = svg.getBoundingClientRect();
  for (const el of svg.querySelectorAll("path, line, circle, rect:not(clipPath rect), text")) {
    const b = el.getBoundingClientRect();
    out.push({svg: svg.dataset.testid || "", tag: el.tagName, cls: el.getAttribute("class") || "",
              text: el.textContent, frame: [frame.left, frame.top, frame.right, frame.bottom],
              box: [b.left, b.top, b.right, b.bottom]});
  }
}
return out;
"""


def svg_boxes(driver, selector: str) -> list[dict]:
    """Each path, line, circle, rect and text in the SVGs matching ``selector``, as the browser laid it out.

    Each item: ``svg`` (its ``data-testid``), ``tag``, ``cls``, ``text``, ``box`` and ``frame`` (the SVG's
    box), boxes as ``[left, top, right, bottom]`` from ``getBoundingClientRect``.
    """
    return driver.execute_script(_BOXES_JS, selector)


def outside_frame(item: dict, slack: float = 0.5) -> bool:
    """Whether an item of :func:`svg_boxes` reaches outside its SVG (by more than ``slack`` px)."""
    left, top, right, bottom = item["box"]
    f_left, f_top, f_right, f_bottom = item["frame"]
    return left < f_left - slack or top < f_top - slack or right > f_right + slack or bottom > f_bottom + slack


def overlapping(items: list[dict]) -> list[tuple[str, str]]:
    """The texts of every pair of items of :func:`svg_boxes` whose boxes intersect."""
    pairs = []
    for i, a in enumerate(items):
        for b in items[i + 1 :]:
            (al, at, ar, ab), (bl, bt, br, bb) = a["box"], b["box"]
            if al < br and bl < ar and at < bb and bt < ab:
                pairs.append((a["text"], b["text"]))
    return pairs


def choose_window(driver, label: str) -> None:
    """Click the dashboard's time window button ``label`` (``5 min``, ``1 h``, ``all``); the page redraws at once."""
    import time

    driver.find_element("xpath", f"//span[@data-testid='window']/button[text()='{label}']").click()
    time.sleep(0.3)
