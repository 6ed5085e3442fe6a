"""The fault campaign in CI: ``faults campaign --only tm-kill,broker-kill,poison`` from a clean checkout.

The command runs as a user runs it, in a process of its own; each scenario
starts a broker and a standalone cluster of its own (the session's are not
used). One fault each (``--count 1 --quick``) keeps the three near a minute
apiece; the full campaign and its figures are in docs/RELIABILITY.md.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.kafka]

SCENARIOS = ("tm-kill", "broker-kill", "poison")


@pytest.fixture(scope="module")
def verdicts(tmp_path_factory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("faults")
    verdict_file = work / "campaign.json"
    run = subprocess.run(
        [sys.executable, "-m", "serving.cli", "faults", "campaign", "--only", ",".join(SCENARIOS), "--quick",
         "--count", "1", "--json", str(verdict_file), "--work-dir", str(work / "runs")],
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert verdict_file.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    return {v["scenario"]: v for v in json.loads(verdict_file.read_text())}


def _statuses(verdict: dict) -> dict[str, str]:
    return {name.split("_", 1)[0]: check["status"] for name, check in verdict["checks"].items()}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_nothing_is_lost_duplicated_or_invented(verdicts, scenario):
    verdict = verdicts[scenario]
    checks = _statuses(verdict)
    must_pass = ("c1", "c2", "c3", "c4", "c6", "c7")
    assert {c: checks[c] for c in must_pass} == dict.fromkeys(must_pass, "pass"), json.dumps(verdict["checks"])
    assert checks["c5"] in ("pass", "inconclusive")
    counts = verdict["counts"]
    assert counts["acked"] > 1000 and counts["lost"] == 0 and counts["duplicated"] == 0
    assert verdict["passed"]


@pytest.mark.parametrize("scenario", ["tm-kill", "poison"])
def test_a_killed_taskmanager_restarts_the_job_once(verdicts, scenario):
    verdict = verdicts[scenario]
    assert _statuses(verdict)["c8"] == "pass"
    assert verdict["counts"]["restarts"] == verdict["counts"]["faults"] == 1


def test_poison_ends_as_dead_letters_not_failures(verdicts):
    counts = verdicts["poison"]["counts"]
    # ~10 % of the records are seeded garbage: each is a dead letter with its coordinates as id.
    assert 0.05 * counts["acked"] < counts["dead_letters"] < 0.15 * counts["acked"]
