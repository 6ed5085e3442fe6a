"""Savepoint compatibility: the operator uids and state descriptors the code declares match the record.

A failure here means a change would make existing savepoints unrestorable
(or silently drop state). See docs/state-compatibility.md; if the change is
deliberate, run ``python -m flink_jobs.state_layout --write``.
"""

from __future__ import annotations

import json

import pytest

from flink_jobs import state_layout
from serving.ops.cluster import config as cluster
from serving.settings import JOB_NAMES

pytestmark = pytest.mark.flink

HOW_TO = (
    "operator uids or state descriptors changed: savepoints taken before this change may not restore. "
    "Read docs/state-compatibility.md; if the change is deliberate, record it with "
    "`python -m flink_jobs.state_layout --write` and commit flink_jobs/state_layout.json.\n"
)


@pytest.fixture(scope="module")
def current():
    return state_layout.current_layout()


def test_operator_uids_and_state_descriptors_match_the_recorded_layout(current):
    recorded = json.loads(state_layout.LAYOUT_FILE.read_text())
    assert current == recorded, HOW_TO + state_layout.diff(recorded, current)


def test_every_stateful_operator_has_its_uid_in_the_submitted_graph(current):
    for job, layout in current["jobs"].items():
        for uid in layout["state"]:
            assert uid in layout["operators"]["uids"], f"{job}: {uid} was fused away or lost its uid"
    assert current["max_parallelism"] == 128


@pytest.mark.parametrize(
    "module",
    [m for _, m in state_layout.STATEFUL_OPERATORS.values()] + list(state_layout.SHARED_STATEFUL_OPERATORS.values()),
)
def test_state_descriptors_are_all_module_level(module):
    declared = state_layout.declared_descriptor_count(module)
    assert declared == len(state_layout.state_descriptors(module)), (
        f"{module} declares a state descriptor inside a function, where the recorded layout cannot see it"
    )


def test_cluster_commands_know_the_jobs_by_their_flink_names():
    assert {k: v for k, v in JOB_NAMES.items() if k in cluster.JOB_NAMES} == cluster.JOB_NAMES


def test_a_changed_layout_shows_as_a_diff(current):
    changed = json.loads(json.dumps(current))
    changed["jobs"]["keyed"]["state"]["serve-keyed"].pop("current-model")
    text = state_layout.diff(current, changed)
    assert '-          "current-model": {' in text
