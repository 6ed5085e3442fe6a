"""Log lines: one event is one line, whatever the values hold."""

from __future__ import annotations

import logging

import pytest

from serving import logs

FORGED = 'evil\nts=2026-01-01T00:00:00 level=error logger=modelserving.job event="INJECTED LINE"'


def _line(**extra) -> str:
    record = logging.makeLogRecord({"name": "modelserving.keyed", "levelname": "INFO", "msg": "model accepted"})
    record.__dict__.update(extra)
    return logs.KeyValueFormatter().format(record)


@pytest.mark.parametrize("hostile", [FORGED, "a\rb", "a\u2028b", "a\x85b", "tab\there", "nul\x00x", 'q"uote\\'])
def test_untrusted_values_never_break_a_log_line(hostile):
    line = _line(model=hostile, version=hostile, reason=hostile)
    assert len(line.splitlines()) == 1
    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x85" not in line
    assert not any(ch < " " for ch in line)


def test_a_forged_line_stays_inside_its_quoted_value():
    line = _line(model=FORGED)
    assert 'model="evil\\nts=2026-01-01T00:00:00 level=error logger=modelserving.job event=\\"INJECTED LINE\\""' in line


def test_plain_values_stay_bare_and_unicode_stays_readable():
    assert "model=linear version=µ-1" in _line(model="linear", version="µ-1")
