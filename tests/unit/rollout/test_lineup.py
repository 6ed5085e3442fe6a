"""The lineup of a data type: every transition, by hand-stated expectations from the rules, and its bytes."""

from __future__ import annotations

import pytest

from serving.errors import ConfigError
from serving.pb.lineup_state_pb2 import LineupEntry, LineupState
from serving.pb.model_control_pb2 import ModelControl
from serving.rollout.control import control_message
from serving.rollout.lineup import CanarySlot, Lineup, LineupStateError, Outcome, VersionEntry


def entry(version: str, created_at: int) -> VersionEntry:
    return VersionEntry(version, name="rf", sha256=f"sha-{version}", created_at=created_at, signed_by="key-1")


def accept(lineup: Lineup, version: str, created_at: int, role: str = "champion", weight_bp: int = 0, now: int = 0):
    return lineup.accepted(entry(version, created_at), role, weight_bp, now=now or created_at + 1)


def ctl(lineup: Lineup, action: str, version: str = "", now: int = 9_000, **fields) -> Outcome:
    return lineup.apply(control_message("wine", action, version, **fields), now=now)


def champions(*versions: str, keep: int = 3) -> Lineup:
    """Versions accepted as champion one after the other: vN created at N*100, accepted at N*100 + 1."""
    lineup = Lineup("wine", keep=keep)
    for v in versions:
        outcome = accept(lineup, v, int(v[1:]) * 100)
        assert not outcome.rejected, outcome.items
        lineup = outcome.lineup
    return lineup


def rejected(outcome: Outcome, before: Lineup, reason: str) -> None:
    assert outcome.rejected and outcome.reason == reason, outcome.items
    assert outcome.lineup is before
    assert [i.kind for i in outcome.items] == ["rejected"]


def roles(lineup: Lineup) -> dict[str, str]:
    return {e.version: e.role for e in lineup.history}


# ------------------------------------------------------------------ accepted


def test_the_first_champion_is_activated_with_its_entry():
    outcome = Lineup("wine").accepted(entry("v1", 100), now=150)
    assert outcome.kinds() == [("activated", "v1")]
    assert outcome.lineup.champion == VersionEntry("v1", "rf", "sha-v1", 100, "champion", 150, 0, "key-1")
    assert outcome.lineup.active_versions() == ("v1",)


def test_a_new_champion_replaces_the_old_one_which_stays_in_history():
    before = champions("v1")
    outcome = accept(before, "v2", 200, now=250)
    assert outcome.kinds() == [("activated", "v2"), ("retired", "v1")]
    lineup = outcome.lineup
    assert lineup.champion.version == "v2"
    assert [e.version for e in lineup.history] == ["v1", "v2"]
    assert lineup.entry("v1") == VersionEntry("v1", "rf", "sha-v1", 100, "", 101, 250, "key-1")
    assert before.champion.version == "v1"  # the old value is untouched


def test_the_oldest_inactive_version_is_evicted_beyond_keep():
    lineup = champions("v1", "v2", "v3")
    outcome = accept(lineup, "v4", 400)
    assert outcome.kinds() == [("activated", "v4"), ("retired", "v3"), ("evicted", "v1")]
    assert [e.version for e in outcome.lineup.history] == ["v2", "v3", "v4"]
    assert outcome.lineup.evicted == ("v1",)


def test_keep_is_configurable_and_active_versions_are_never_evicted():
    assert [e.version for e in champions("v1", "v2", "v3", keep=2).history] == ["v2", "v3"]
    lineup = champions("v1", keep=1)
    lineup = accept(lineup, "v2", 200, role="shadow").lineup
    lineup = accept(lineup, "v3", 300, role="decoy").lineup
    assert roles(lineup) == {"v1": "champion", "v2": "shadow", "v3": "decoy"}
    with pytest.raises(ConfigError):
        Lineup("wine", keep=0)


def test_a_model_created_before_the_champion_is_a_downgrade():
    before = champions("v1", "v2")
    rejected(accept(before, "v0", 150), before, "downgrade")


def test_a_version_remembered_as_older_is_a_downgrade_even_with_a_new_created_at():
    before = champions("v1", "v2")
    rejected(accept(before, "v1", 500), before, "downgrade")


def test_an_evicted_version_published_again_as_champion_is_a_downgrade():
    before = champions("v1", "v2", "v3", "v4")
    rejected(accept(before, "v1", 900), before, "downgrade")


def test_the_champions_own_version_again_is_rejected():
    before = champions("v1")
    rejected(accept(before, "v1", 100), before, "already champion")
    rejected(accept(before, "v1", 100, role="shadow"), before, "already champion")


def test_an_equal_created_at_is_no_downgrade():
    assert accept(champions("v1"), "v1b", 100).lineup.champion.version == "v1b"


def test_a_shadow_canary_and_decoy_are_added_beside_the_champion():
    lineup = champions("v1")
    outcome = accept(lineup, "v2", 200, role="shadow")
    assert outcome.kinds() == [("added", "v2")]
    lineup = accept(outcome.lineup, "v3", 300, role="shadow").lineup
    lineup = accept(lineup, "v4", 400, role="canary", weight_bp=500).lineup
    lineup = accept(lineup, "v5", 500, role="decoy").lineup
    assert lineup.champion.version == "v1"
    assert [e.version for e in lineup.shadows] == ["v2", "v3"]
    assert lineup.canary == CanarySlot("v4", 500)
    assert lineup.decoy.version == "v5"
    assert lineup.active_versions() == ("v1", "v2", "v3", "v4", "v5")


def test_a_new_canary_replaces_the_old_one():
    lineup = accept(champions("v1"), "v2", 200, role="canary", weight_bp=500).lineup
    outcome = accept(lineup, "v3", 300, role="canary", weight_bp=1500, now=777)
    assert outcome.kinds() == [("added", "v3"), ("retired", "v2")]
    assert outcome.lineup.canary == CanarySlot("v3", 1500)
    assert outcome.lineup.entry("v2").retired_at == 777


def test_an_unknown_role_or_weight_is_rejected():
    before = champions("v1")
    rejected(accept(before, "v2", 200, role="primary"), before, "unknown role")
    rejected(accept(before, "v2", 200, role="canary", weight_bp=10_001), before, "bad weight")


# ------------------------------------------------------------------ pin, unpin


def test_pinned_champions_are_staged_and_unpin_activates_the_newest():
    lineup = ctl(champions("v1", "v2"), "pin").lineup
    assert lineup.pinned
    outcome = accept(lineup, "v4", 400)
    assert outcome.kinds() == [("staged", "v4")]
    outcome = accept(outcome.lineup, "v3", 300)  # staged later, created earlier
    lineup = outcome.lineup
    assert lineup.champion.version == "v2"
    assert lineup.staged == ("v4", "v3")
    outcome = ctl(lineup, "unpin", now=5_000)
    assert outcome.kinds() == [("unpinned", ""), ("activated", "v4"), ("retired", "v2")]
    lineup = outcome.lineup
    assert (lineup.pinned, lineup.staged, lineup.champion.version) == (False, (), "v4")
    assert lineup.champion.deployed_at == 5_000
    assert lineup.entry("v3").role == ""


def test_unpin_without_staged_versions_only_unpins():
    outcome = ctl(ctl(champions("v1"), "pin").lineup, "unpin")
    assert outcome.kinds() == [("unpinned", "")]
    assert outcome.lineup.champion.version == "v1"


def test_pin_twice_and_unpin_unpinned_are_rejected():
    lineup = champions("v1")
    rejected(ctl(lineup, "unpin"), lineup, "not pinned")
    pinned = ctl(lineup, "pin").lineup
    rejected(ctl(pinned, "pin"), pinned, "already pinned")


def test_a_downgrade_is_rejected_while_pinned_too():
    before = ctl(champions("v1", "v2"), "pin").lineup
    rejected(accept(before, "v0", 50), before, "downgrade")


# ------------------------------------------------------------------ promote


def test_promoting_a_shadow_makes_it_champion_and_keeps_the_old_one():
    lineup = accept(champions("v1"), "v2", 200, role="shadow").lineup
    outcome = ctl(lineup, "promote", "v2", now=3_000)
    assert outcome.kinds() == [("promoted", "v2"), ("retired", "v1")]
    lineup = outcome.lineup
    assert roles(lineup) == {"v1": "", "v2": "champion"}
    assert lineup.shadows == ()
    assert lineup.champion.deployed_at == 3_000
    assert lineup.champions == ("v1", "v2")


def test_promoting_the_canary_clears_its_weight():
    lineup = accept(champions("v1"), "v2", 200, role="canary", weight_bp=2500).lineup
    lineup = ctl(lineup, "promote", "v2").lineup
    assert (lineup.champion.version, lineup.canary, lineup.canary_weight_bp) == ("v2", None, 0)


def test_promoting_a_staged_version_works_while_pinned():
    lineup = accept(ctl(champions("v1"), "pin").lineup, "v2", 200).lineup
    outcome = ctl(lineup, "promote", "v2")
    assert outcome.kinds() == [("promoted", "v2"), ("retired", "v1")]
    assert (outcome.lineup.champion.version, outcome.lineup.staged, outcome.lineup.pinned) == ("v2", (), True)


def test_what_cannot_be_promoted():
    lineup = accept(champions("v1", "v2"), "v3", 300, role="decoy").lineup
    rejected(ctl(lineup, "promote", "v1"), lineup, "not a candidate")  # history: roll back instead
    rejected(ctl(lineup, "promote", "v3"), lineup, "not a candidate")  # the decoy
    rejected(ctl(lineup, "promote", "v2"), lineup, "already champion")
    rejected(ctl(lineup, "promote", "v9"), lineup, "unknown version")


# ------------------------------------------------------------------ rollback


def test_rollback_goes_back_through_the_previous_champions():
    lineup = champions("v1", "v2", "v3")
    outcome = ctl(lineup, "rollback", now=4_000)
    assert outcome.kinds() == [("rolled back", "v2"), ("retired", "v3")]
    assert outcome.lineup.champion == VersionEntry("v2", "rf", "sha-v2", 200, "champion", 4_000, 0, "key-1")
    assert outcome.lineup.entry("v3").retired_at == 4_000
    outcome = ctl(outcome.lineup, "rollback")
    assert outcome.kinds() == [("rolled back", "v1"), ("retired", "v2")]
    before = outcome.lineup
    rejected(ctl(before, "rollback"), before, "no previous champion")


def test_rollback_to_a_named_version_skips_the_ones_in_between():
    lineup = ctl(champions("v1", "v2", "v3"), "rollback", "v1").lineup
    assert lineup.champion.version == "v1"
    assert lineup.champions == ("v1",)
    rejected(ctl(lineup, "rollback"), lineup, "no previous champion")
    rejected(ctl(lineup, "rollback", "v1"), lineup, "already champion")


def test_rollback_after_eviction():
    lineup = champions("v1", "v2", "v3", "v4", "v5")
    assert [e.version for e in lineup.history] == ["v3", "v4", "v5"]
    rejected(ctl(lineup, "rollback", "v1"), lineup, "evicted version")
    rejected(ctl(lineup, "rollback", "v0"), lineup, "unknown version")
    lineup = ctl(lineup, "rollback").lineup
    assert lineup.champion.version == "v4"
    lineup = ctl(lineup, "rollback").lineup
    assert lineup.champion.version == "v3"
    rejected(ctl(lineup, "rollback"), lineup, "no previous champion")


def test_only_the_last_32_evicted_names_are_remembered():
    lineup = champions(*(f"v{n}" for n in range(1, 41)))
    assert [e.version for e in lineup.history] == ["v38", "v39", "v40"]
    assert lineup.evicted == tuple(f"v{n}" for n in range(6, 38))
    rejected(ctl(lineup, "rollback", "v6"), lineup, "evicted version")
    rejected(ctl(lineup, "rollback", "v5"), lineup, "unknown version")


def test_rollback_works_while_pinned():
    lineup = ctl(champions("v1", "v2"), "pin").lineup
    lineup = ctl(lineup, "rollback").lineup
    assert (lineup.champion.version, lineup.pinned) == ("v1", True)


def test_a_version_accepted_again_after_a_rollback_is_no_downgrade():
    lineup = ctl(champions("v1", "v2"), "rollback").lineup
    outcome = accept(lineup, "v2", 200)
    assert outcome.kinds() == [("activated", "v2"), ("retired", "v1")]


# ------------------------------------------------------------------ set role, set weight, retire


def test_set_role_gives_a_remembered_version_a_role():
    lineup = champions("v1", "v2")
    outcome = ctl(lineup, "set_role", "v1", role="shadow", now=6_000)
    assert outcome.kinds() == [("role set", "v1")]
    assert outcome.lineup.entry("v1") == VersionEntry("v1", "rf", "sha-v1", 100, "shadow", 6_000, 0, "key-1")
    lineup = ctl(outcome.lineup, "set_role", "v1", role="canary", weight_bp=700).lineup
    assert (lineup.canary, lineup.shadows) == (CanarySlot("v1", 700), ())


def test_set_role_champion_is_a_promotion_and_the_champion_keeps_its_role():
    lineup = accept(champions("v1"), "v2", 200, role="shadow").lineup
    rejected(ctl(lineup, "set_role", "v1", role="decoy"), lineup, "would leave no champion")
    rejected(ctl(lineup, "set_role", "v2", role="shadow"), lineup, "no change")
    outcome = ctl(lineup, "set_role", "v2", role="champion")
    assert outcome.kinds() == [("promoted", "v2"), ("retired", "v1")]


def test_set_weight_changes_the_canary_only():
    lineup = accept(accept(champions("v1"), "v2", 200, role="canary", weight_bp=100).lineup, "v3", 300, "shadow").lineup
    outcome = ctl(lineup, "set_weight", "v2", weight_bp=4000)
    assert outcome.kinds() == [("weight set", "v2")]
    assert outcome.lineup.canary == CanarySlot("v2", 4000)
    rejected(ctl(lineup, "set_weight", "v3", weight_bp=4000), lineup, "not canary")


def test_retire_removes_a_role_but_never_the_champions():
    lineup = accept(accept(champions("v1"), "v2", 200, role="shadow").lineup, "v3", 300, "canary", 900).lineup
    outcome = ctl(lineup, "retire", "v2", now=7_000)
    assert outcome.kinds() == [("retired", "v2")]
    assert outcome.lineup.entry("v2").retired_at == 7_000
    assert outcome.lineup.shadows == ()
    retired = ctl(outcome.lineup, "retire", "v3").lineup
    assert (retired.canary, retired.canary_weight_bp) == (None, 0)
    rejected(ctl(retired, "retire", "v1"), retired, "would leave no champion")
    rejected(ctl(retired, "retire", "v2"), retired, "not active")


def test_retire_unstages_a_staged_version():
    lineup = accept(ctl(champions("v1"), "pin").lineup, "v2", 200).lineup
    outcome = ctl(lineup, "retire", "v2")
    assert outcome.kinds() == [("retired", "v2")]
    assert outcome.lineup.staged == ()
    assert ctl(outcome.lineup, "unpin").lineup.champion.version == "v1"


def test_a_control_for_another_data_type_or_unchecked_is_rejected():
    lineup = champions("v1")
    rejected(lineup.apply(control_message("sensor", "pin")), lineup, "wrong data type")
    rejected(lineup.apply(ModelControl(data_type="wine")), lineup, "bad control message")


# ------------------------------------------------------------------ bytes


def test_a_lineup_survives_its_bytes_with_everything():
    lineup = champions("v1", "v2", "v3", "v4", "v5", keep=4)  # v1 evicted
    lineup = accept(lineup, "v6", 600, role="shadow").lineup
    lineup = accept(lineup, "v7", 700, role="canary", weight_bp=1234).lineup
    lineup = accept(lineup, "v8", 800, role="decoy").lineup
    lineup = ctl(lineup, "pin").lineup
    lineup = accept(lineup, "v9", 900).lineup
    expected = {"v5": "champion", "v6": "shadow", "v7": "canary", "v8": "decoy", "v9": ""}
    assert roles(lineup) == expected
    assert (lineup.staged, lineup.pinned, lineup.keep) == (("v9",), True, 4)
    assert lineup.evicted == ("v1", "v2", "v3", "v4")
    again = Lineup.from_bytes(lineup.to_bytes())
    assert again == lineup
    assert roles(again) == expected
    assert again.canary == CanarySlot("v7", 1234)
    assert again.entry("v6") == VersionEntry("v6", "rf", "sha-v6", 600, "shadow", 601, 0, "key-1")
    # and it goes on where it stopped: unpin activates the staged v9.
    assert ctl(again, "unpin").lineup.champion.version == "v9"


def test_the_empty_lineup_survives_its_bytes():
    assert Lineup.from_bytes(Lineup("wine", keep=7).to_bytes()) == Lineup("wine", keep=7)


def state(**fields) -> bytes:
    return LineupState(**{"format": 1, "data_type": "wine", "keep": 3, **fields}).SerializeToString()


@pytest.mark.parametrize(
    "data",
    [
        b"\xff\xff\xff",
        b"",  # format 0
        b"\x0a\x02\xff\xfe",
        state(format=2),
        state(keep=0),
        state(entries=[LineupEntry(version="a", role="champion"), LineupEntry(version="b", role="champion")]),
        state(entries=[LineupEntry(version="a", role="boss")]),
        state(entries=[LineupEntry(version="a"), LineupEntry(version="a")]),
        state(entries=[LineupEntry(version="a", role="champion")]),  # champions not naming it
        state(staged=["x"]),
        state(canary_weight_bp=10),  # a weight without a canary
        state(entries=[LineupEntry(version="a")], evicted=["a"]),
    ],
)
def test_bytes_that_are_no_lineup_are_a_typed_error(data):
    with pytest.raises(LineupStateError) as caught:
        Lineup.from_bytes(data)
    assert caught.value.reason == "bad lineup state"
