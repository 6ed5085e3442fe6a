"""The fault campaign's CI scenario: ``modelserving faults run tm-kill`` passes C1-C8 from a clean checkout.

The command runs as a user runs it, in a process of its own, with a broker
and a standalone cluster of its own (the session's cluster is not used).
One TaskManager kill (``--count 1 --quick``) keeps it near a minute; the full
campaign and its figures are in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]


def test_a_killed_taskmanager_loses_duplicates_and_invents_nothing(tmp_path):
    verdict_file = tmp_path / "tm-kill.json"
    run = subprocess.run(
        [sys.executable, "-m", "serving.cli", "faults", "run", "tm-kill", "--quick", "--count", "1",
         "--json", str(verdict_file), "--work-dir", str(tmp_path / "work")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert verdict_file.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    verdict = json.loads(verdict_file.read_text())
    checks = {name.split("_", 1)[0]: check["status"] for name, check in verdict["checks"].items()}
    assert {c: checks[c] for c in ("c1", "c2", "c3", "c4", "c6", "c7", "c8")} == dict.fromkeys(
        ("c1", "c2", "c3", "c4", "c6", "c7", "c8"), "pass"
    ), json.dumps(verdict["checks"], indent=1)
    assert checks["c5"] in ("pass", "inconclusive")
    counts = verdict["counts"]
    assert counts["acked"] > 1000 and counts["lost"] == 0 and counts["duplicated"] == 0
    assert counts["restarts"] == counts["faults"] == 1
    assert run.returncode == 0, run.stderr[-2000:]
