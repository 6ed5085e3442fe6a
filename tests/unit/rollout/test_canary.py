"""Canary selection: a stable hash of the record id, monotone in the weight, the same in every process."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from serving.rollout.canary import bucket, experiment_name, in_canary

REPO = Path(__file__).resolve().parents[3]
IDS = [f"r{i}" for i in range(20_000)]
EXPERIMENT = "wine/v7"


def selected(weight_bp: int, experiment: str = EXPERIMENT) -> set[str]:
    return {i for i in IDS if in_canary(experiment, i, weight_bp)}


def test_the_bucket_is_blake2b_of_experiment_and_id_modulo_10000():
    # The oracle: the rule written out with hashlib, independently of the module.
    for experiment, record_id in [("wine/v7", "r0"), ("wine/v7", "r19999"), ("sensor/2.0", "abc"), ("x", "")]:
        data = (experiment + ":" + record_id).encode("utf-8")
        expected = int(hashlib.blake2b(data, digest_size=8).hexdigest(), 16) % 10_000
        assert bucket(experiment, record_id) == expected


def test_weight_2000_selects_a_fifth_of_the_records():
    share = len(selected(2000)) / len(IDS)
    assert 0.19 <= share <= 0.21


def test_raising_the_weight_only_adds_records():
    at_2000, at_3000 = selected(2000), selected(3000)
    assert at_2000 <= at_3000
    assert 0.29 <= len(at_3000) / len(IDS) <= 0.31


def test_the_edges_select_none_and_all():
    assert selected(0) == set()
    assert selected(10_000) == set(IDS)


def test_experiments_select_different_records():
    assert selected(2000, "wine/v7") != selected(2000, "wine/v8")


def test_another_process_with_another_hash_seed_selects_the_same_records():
    code = (
        "import json, sys; from serving.rollout.canary import in_canary; "
        f"print(json.dumps(sorted(i for i in (f'r{{n}}' for n in range(20000)) if in_canary({EXPERIMENT!r}, i, 2000))))"
    )
    seeds = {"PYTHONHASHSEED": "12345"} if os.environ.get("PYTHONHASHSEED") != "12345" else {"PYTHONHASHSEED": "54321"}
    child = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, **seeds}, capture_output=True, text=True, timeout=120
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert set(json.loads(child.stdout)) == selected(2000)


def test_the_experiment_name_is_data_type_slash_version():
    assert experiment_name("wine", "v7") == "wine/v7"
