"""From lineup transitions to events, dead letters and kept versions, with real admitted reference models.

Expected values are stated by hand from the lineup's rules (serving/rollout/lineup.py) and the
ModelEvent kinds (protos/model_event.proto); hashes and key ids come from hashlib and the signing code.
"""

from __future__ import annotations

import hashlib

import pytest

from serving.core.admission import ModelCache
from serving.formats import descriptor_from_path
from serving.governance.signing import generate_keys, sign
from serving.pb.model_event_pb2 import ModelEvent
from serving.records import builtin_registry
from serving.rollout.control import control_message
from serving.rollout.keeper import lineup_of, on_accepted, on_control, requested_role
from serving.rollout.lineup import CanarySlot, Lineup
from serving.settings import ServingOptions
from tests.support.reference import PMML_LINEAR

WINE = builtin_registry().get("wine")
CAP = 256 * 1024
NOW = 1_700_000_000_000


@pytest.fixture(scope="module")
def signing(tmp_path_factory):
    private, public = generate_keys(tmp_path_factory.mktemp("keys"), "ops")
    return private.read_bytes(), ModelCache(options=ServingOptions(trusted_keys=(public.read_text(),)))


@pytest.fixture(scope="module")
def publish(signing):
    """Admit the reference linear model as ``version``, created at ``created_at``, asking for a role."""
    private, cache = signing

    def _publish(version: str, created_at: int, role: str = "", weight_bp: str = "", signed: bool = False):
        metadata = {k: v for k, v in (("role", role), ("weight_bp", weight_bp)) if v}
        descriptor = descriptor_from_path(PMML_LINEAR, "pmml", version=version, name="lin", metadata=metadata)
        descriptor.created_at = created_at
        if signed:
            sign(descriptor, bytes(descriptor.data), private)
        payload = descriptor.SerializeToString()
        admission = cache.admit(payload, WINE)
        assert admission.accepted, admission.event
        return admission.model, payload, descriptor

    return _publish


def accept(lineup: Lineup, published, now: int = NOW):
    model, payload, _ = published
    return on_accepted(lineup, model, payload, now, CAP)


def control(lineup: Lineup, action: str, version: str = "", **fields):
    return on_control(lineup, control_message("wine", action, version, **fields).SerializeToString(), NOW, CAP)


def kinds(change) -> list[tuple[int, str]]:
    return [(e.kind, e.version) for e in change.events]


@pytest.fixture(scope="module")
def crowned(publish) -> Lineup:
    """A lineup whose champion is version 1, created at 1000."""
    change = accept(lineup_of(None, "wine"), publish("1", 1000))
    return change.lineup


def test_a_first_champion_is_scheduled_with_no_extra_event_and_kept(publish):
    change = accept(lineup_of(None, "wine"), publish("1", 1000))
    assert change.schedule is True
    assert change.events == [] and change.dead_letter is None and change.serve is None
    assert change.keep == {"1"}
    assert change.lineup.champion.version == "1"


def test_a_second_champion_is_scheduled_and_the_first_retires(publish, crowned):
    change = accept(crowned, publish("2", 2000))
    assert change.schedule is True
    assert kinds(change) == [(ModelEvent.RETIRED, "1")]
    assert change.keep == {"1", "2"} and change.lineup.champion.version == "2"


def test_a_shadow_is_not_scheduled_and_reported_with_its_artifact_and_signer(publish, crowned):
    published = publish("2", 2000, role="shadow", signed=True)
    model, _, descriptor = published
    assert requested_role(model) == ("shadow", 0)
    change = accept(crowned, published)
    assert change.schedule is False and change.serve is None and change.dead_letter is None
    [event] = change.events
    assert (event.kind, event.version, event.role, event.data_type) == (ModelEvent.ROLE_SET, "2", "shadow", "wine")
    assert event.sha256 == hashlib.sha256(bytes(descriptor.data)).hexdigest()
    assert descriptor.signing_key and event.signed_by == descriptor.signing_key
    assert event.name == "lin" and event.ts == NOW
    assert change.keep == {"1", "2"}
    assert change.lineup.champion.version == "1" and [e.version for e in change.lineup.shadows] == ["2"]


def test_a_canary_takes_the_weight_its_descriptor_asks_for(publish, crowned):
    published = publish("3", 3000, role="canary", weight_bp="2000")
    assert requested_role(published[0]) == ("canary", 2000)
    change = accept(crowned, published)
    assert change.schedule is False
    assert [(e.kind, e.version, e.role) for e in change.events] == [(ModelEvent.ROLE_SET, "3", "canary")]
    assert change.lineup.canary == CanarySlot("3", 2000)


def test_a_weight_that_is_no_number_is_refused_as_a_bad_weight(publish, crowned):
    change = accept(crowned, publish("3", 3000, role="canary", weight_bp="a lot"))
    assert kinds(change) == [(ModelEvent.REJECTED, "3")] and change.events[0].reason.startswith("bad weight")
    assert change.dead_letter.reason == "bad weight" and change.lineup is crowned


def test_a_downgrade_is_rejected_with_a_dead_letter_holding_the_original_bytes(publish, crowned):
    published = publish("0", 500)
    _, payload, _ = published
    change = accept(crowned, published)
    assert change.schedule is False and change.serve is None
    [event] = change.events
    assert event.kind == ModelEvent.REJECTED and event.version == "0"
    assert event.reason.startswith("downgrade")
    assert event.previous_version == "1"  # the champion that keeps serving (model_event.proto)
    letter = change.dead_letter
    assert (letter.source, letter.reason, letter.payload) == ("model", "downgrade", payload)
    assert letter.data_type == "wine" and letter.record_id == "lin:0"
    assert change.lineup is crowned and change.keep == {"1"}


def test_in_event_time_an_older_champion_is_history_serving_its_own_time_range(publish, crowned):
    """Models may arrive out of order in event time: an older one is scheduled (the timeline decides), not refused."""
    model, payload, _ = publish("0", 500)
    change = on_accepted(crowned, model, payload, NOW, CAP, event_time=True)
    assert change.schedule is True and change.events == [] and change.dead_letter is None
    assert change.lineup.champion.version == "1"  # the newest stays the champion
    assert change.lineup.entry("0") is not None and change.lineup.entry("0").role == ""
    assert change.keep == {"0", "1"}


def test_the_champion_published_again_is_refused(publish, crowned):
    change = accept(crowned, publish("1", 1000))
    assert change.events[0].kind == ModelEvent.REJECTED and change.events[0].reason.startswith("already champion")
    assert change.dead_letter.reason == "already champion" and change.lineup is crowned


def test_a_champion_published_while_pinned_is_staged(publish, crowned):
    pinned = control(crowned, "pin")
    assert kinds(pinned) == [(ModelEvent.PINNED, "")] and pinned.serve is None
    assert pinned.lineup.pinned and pinned.keep == {"1"}
    change = accept(pinned.lineup, publish("2", 2000))
    assert change.schedule is False
    assert kinds(change) == [(ModelEvent.STAGED, "2")]
    assert change.lineup.champion.version == "1" and change.lineup.staged == ("2",)
    assert change.keep == {"1", "2"}
    unpinned = control(change.lineup, "unpin")
    assert kinds(unpinned) == [
        (ModelEvent.UNPINNED, ""),
        (ModelEvent.PROMOTED, "2"),
        (ModelEvent.RETIRED, "1"),
    ]
    assert unpinned.serve == "2"


def test_promoting_a_shadow_makes_it_serve(publish, crowned):
    shadowed = accept(crowned, publish("2", 2000, role="shadow")).lineup
    change = control(shadowed, "promote", "2", reason="agreed 200 of 200")
    assert change.serve == "2" and change.dead_letter is None and change.schedule is False
    assert kinds(change) == [(ModelEvent.PROMOTED, "2"), (ModelEvent.RETIRED, "1")]
    promoted = change.events[0]
    assert promoted.role == "champion" and promoted.reason == "agreed 200 of 200"
    assert change.lineup.champion.version == "2" and change.keep == {"1", "2"}


def test_rollback_without_a_version_goes_back_to_the_previous_champion(publish, crowned):
    second = accept(crowned, publish("2", 2000)).lineup
    change = control(second, "rollback")
    assert change.serve == "1"
    assert kinds(change) == [(ModelEvent.ROLLED_BACK, "1"), (ModelEvent.RETIRED, "2")]
    assert change.lineup.champion.version == "1"


def test_a_control_that_changes_no_champion_serves_nothing_new(publish, crowned):
    canaried = accept(crowned, publish("3", 3000, role="canary", weight_bp="2000")).lineup
    change = control(canaried, "set_weight", "3", weight_bp=5000)
    assert kinds(change) == [(ModelEvent.WEIGHT_SET, "3")] and change.serve is None
    assert change.lineup.canary == CanarySlot("3", 5000)


def test_undecodable_control_bytes_are_rejected_with_a_dead_letter_and_change_nothing(crowned):
    garbage = b"\xff\xff\xff not a control"
    change = on_control(crowned, garbage, NOW, CAP)
    [event] = change.events
    assert event.kind == ModelEvent.CONTROL_REJECTED and event.reason.startswith("bad control message")
    letter = change.dead_letter
    assert (letter.source, letter.reason, letter.payload) == ("control", "bad control message", garbage)
    assert change.lineup is crowned and change.serve is None and change.keep == {"1"}


def test_a_control_on_an_unknown_version_is_rejected(crowned):
    payload = control_message("wine", "promote", "9").SerializeToString()
    change = on_control(crowned, payload, NOW, CAP)
    [event] = change.events
    assert (event.kind, event.version) == (ModelEvent.CONTROL_REJECTED, "9")
    assert event.reason.startswith("unknown version")
    assert (change.dead_letter.source, change.dead_letter.reason) == ("control", "unknown version")
    assert change.dead_letter.payload == payload and change.lineup is crowned


def test_a_champion_served_before_lineups_existed_is_adopted(publish):
    model, _, _ = publish("7", 7000)
    lineup = lineup_of(None, "wine", model)
    assert lineup.data_type == "wine" and lineup.champion.version == "7" and lineup.champions == ("7",)
    assert lineup.entry("7").sha256 == model.artifact_sha256
    assert lineup_of(None, "wine").champion is None
    # Bytes in state win over the adopted champion.
    assert lineup_of(lineup.to_bytes(), "wine", None) == lineup
    empty = Lineup("wine", keep=5)
    assert lineup_of(empty.to_bytes(), "wine", model) == empty
