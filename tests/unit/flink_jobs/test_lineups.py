"""Lineups and artifacts in (fake) Flink state, keyed and broadcast, with real admitted reference models.

Which versions are remembered is stated by hand from the lineup's rules (keep 3: roles stay, the oldest
accepted of the rest go); no Flink runtime is needed.
"""

from __future__ import annotations

import pytest

from flink_jobs.functions.lineups import SEP, BroadcastSlots, KeyedSlots, LineupStore
from flink_jobs.functions.metrics import METRIC_GROUP, ServingMetrics
from flink_jobs.tags import DEAD_LETTERS, MODEL_EVENTS
from serving.core.admission import ModelCache
from serving.formats import descriptor_from_path
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import builtin_registry
from serving.rollout.control import control_message
from serving.rollout.lineup import Lineup
from serving.settings import ServingOptions
from serving.testing import FakeMapState, FakeMetricGroup, FakeValueState
from tests.support.reference import PMML_LINEAR

WINE = builtin_registry().get("wine")


class Slots:
    """One kind of slots over fresh fake state, and the versions whose artifacts that state holds."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "keyed":
            self.artifacts = FakeMapState()
            self.slots = KeyedSlots(FakeValueState(), self.artifacts)
        else:
            self.artifacts = FakeMapState()
            self.slots = BroadcastSlots(FakeMapState(), self.artifacts)

    def stored(self, data_type: str = "wine") -> set[str]:
        if self.kind == "keyed":
            return set(self.artifacts.items_by_key)
        prefix = f"{data_type}{SEP}"
        return {k[len(prefix) :] for k in self.artifacts.items_by_key if k.startswith(prefix)}


@pytest.fixture(params=["keyed", "broadcast"])
def state(request) -> Slots:
    return Slots(request.param)


def options(**kw) -> ServingOptions:
    return ServingOptions(**kw)


def payload(version: str, created_at: int, role: str = "", weight_bp: str = "") -> bytes:
    metadata = {k: v for k, v in (("role", role), ("weight_bp", weight_bp)) if v}
    descriptor = descriptor_from_path(PMML_LINEAR, "pmml", version=version, name="lin", metadata=metadata)
    descriptor.created_at = created_at
    return descriptor.SerializeToString()


def publish(store: LineupStore, version: str, created_at: int, role: str = "", weight_bp: str = "", champion=None):
    """Admit a model message and hand the accepted model to the store, as the jobs do."""
    raw = payload(version, created_at, role, weight_bp)
    admission = store.cache.admit(raw, WINE)
    assert admission.accepted, admission.event
    return admission, store.accepted("wine", admission, raw, champion), raw


def test_an_accepted_model_keeps_its_artifact_and_the_lineup(state):
    store = LineupStore(state.slots, ModelCache(), options())
    admission, change, _ = publish(store, "1", 1000)
    assert change.schedule is True and change.events == []
    assert state.slots.artifact("wine", "1") == admission.model.to_bytes()
    assert state.stored() == {"1"}
    assert Lineup.from_bytes(state.slots.lineup("wine")).champion.version == "1"
    assert store.lineup("wine").champion.version == "1"
    # The accepted event carries what the lineup made of it.
    assert admission.event.kind == ModelEvent.ACCEPTED and admission.event.role == "champion"
    assert admission.event.sha256 == admission.model.artifact_sha256


def test_only_the_remembered_versions_keep_their_artifacts(state):
    store = LineupStore(state.slots, ModelCache(), options(keep_versions=3))
    if state.kind == "broadcast":  # another data type's artifact is none of this lineup's business
        state.slots.put_artifact("wine-white", "1", b"other")
    remembered = []
    for n in range(1, 6):
        _, change, _ = publish(store, str(n), n * 1000)
        remembered.append(state.stored())
        assert change.keep == state.stored()
    assert remembered == [{"1"}, {"1", "2"}, {"1", "2", "3"}, {"2", "3", "4"}, {"3", "4", "5"}]
    assert store.model("wine", "1", WINE) is None and store.model("wine", "2", WINE) is None
    assert store.model("wine", "5", WINE).version == "5"
    if state.kind == "broadcast":
        assert state.slots.artifact("wine-white", "1") == b"other"


def test_a_rebuilt_model_comes_from_its_artifact_once_per_schema(state):
    store = LineupStore(state.slots, ModelCache(), options())
    publish(store, "1", 1000)
    other = LineupStore(state.slots, ModelCache(), options())  # another worker, same state
    model = other.model("wine", "1", WINE)
    assert model.version == "1" and model.name == "lin"
    assert other.model("wine", "1", WINE) is model


def test_challengers_are_the_shadows_and_the_canary_with_its_weight(state):
    store = LineupStore(state.slots, ModelCache(), options(comparison_tolerance=0.25))
    assert store.challengers("wine", WINE) is None  # no lineup yet
    publish(store, "1", 1000)
    assert store.challengers("wine", WINE) is None  # a champion alone: the usual case
    publish(store, "2", 2000, role="shadow")
    publish(store, "3", 3000, role="canary", weight_bp="2000")
    found = store.challengers("wine", WINE)
    assert [m.version for m in found.shadows] == ["2"]
    assert found.canary.version == "3" and found.canary_weight_bp == 2000
    assert found.decoy is False and found.tolerance == 0.25
    assert found.versions == ("2", "3")
    assert state.stored() == {"1", "2", "3"}


def test_a_model_the_lineup_refuses_becomes_the_admissions_rejection_and_leaves_the_cache(state):
    cache = ModelCache()
    # A downgrade exists in arrival selection; in event time an older model serves its own time range.
    store = LineupStore(state.slots, cache, options(selection="arrival"))
    publish(store, "1", 2000)
    before = state.slots.lineup("wine")
    raw = payload("0", 1000)
    admission = cache.admit(raw, WINE)
    assert admission.accepted and len(cache) == 2
    change = store.accepted("wine", admission, raw, None)
    assert len(cache) == 1  # the refused model is closed and forgotten
    assert change.events == [] and change.dead_letter is None  # reported as the admission's own outcome
    assert admission.event.kind == ModelEvent.REJECTED and admission.event.reason.startswith("downgrade")
    assert admission.event.version == "0" and admission.event.previous_version == "1"
    letter = admission.dead_letter
    assert (letter.source, letter.reason, letter.payload) == ("model", "downgrade", raw)
    assert state.slots.lineup("wine") == before and state.stored() == {"1"}


def test_a_control_message_changes_the_stored_lineup_or_nothing(state):
    store = LineupStore(state.slots, ModelCache(), options())
    publish(store, "1", 1000)
    publish(store, "2", 2000, role="shadow")
    before = state.slots.lineup("wine")
    refused = store.control("wine", b"\xff garbage", None)
    assert refused.dead_letter.source == "control" and state.slots.lineup("wine") == before
    change = store.control("wine", control_message("wine", "promote", "2").SerializeToString(), None)
    assert change.serve == "2"
    assert Lineup.from_bytes(state.slots.lineup("wine")).champion.version == "2"
    assert store.lineup("wine").champion.version == "2"
    assert store.model("wine", change.serve, WINE).version == "2"


def test_a_champion_served_before_lineups_is_adopted_and_can_be_rolled_back_to(state):
    cache = ModelCache()
    store = LineupStore(state.slots, cache, options())
    old = cache.admit(payload("1", 1000), WINE).model  # served by an older release: no lineup in state
    assert store.lineup("wine", old).champion.version == "1"
    _, change, _ = publish(store, "2", 2000, champion=old)
    assert change.schedule is True and [(e.kind, e.version) for e in change.events] == [(ModelEvent.RETIRED, "1")]
    assert state.stored() == {"1", "2"}
    back = store.control("wine", control_message("wine", "rollback").SerializeToString(), None)
    assert back.serve == "1" and store.model("wine", "1", WINE).version == "1"


def test_emit_gives_the_events_and_the_dead_letter_once(state):
    store = LineupStore(state.slots, ModelCache(), options())
    publish(store, "1", 1000)
    publish(store, "2", 2000, role="shadow")
    group = FakeMetricGroup()
    metrics = ServingMetrics(group)
    promoted = store.control("wine", control_message("wine", "promote", "2").SerializeToString(), None)
    out = list(store.emit(promoted, metrics))
    assert [tag for tag, _ in out] == [MODEL_EVENTS, MODEL_EVENTS]
    assert [ModelEvent.FromString(b).kind for _, b in out] == [ModelEvent.PROMOTED, ModelEvent.RETIRED]
    refused = store.control("wine", b"\xff", None)
    out = list(store.emit(refused, metrics))
    assert [tag for tag, _ in out] == [MODEL_EVENTS, DEAD_LETTERS]
    assert DeadLetter.FromString(out[1][1]).payload == b"\xff"
    assert group.registry[f"{METRIC_GROUP}.dead_letters"].count == 1
    assert list(store.emit(refused, metrics, report=False)) == []
    assert group.registry[f"{METRIC_GROUP}.dead_letters"].count == 1
