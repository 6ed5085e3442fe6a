"""Control messages and lineup state, broken every way: only their own typed errors leave the decoders.

``parse_control`` raises ``ControlMessageError`` and nothing else; what it
accepts is well-formed and any lineup can apply it without raising.
``Lineup.from_bytes`` raises ``LineupStateError`` and nothing else; what it
accepts is a lineup the transitions work on. ``test_backends`` runs this
module again under the pure-Python protobuf backend.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from serving.pb.lineup_state_pb2 import LineupState
from serving.pb.model_control_pb2 import ModelControl
from serving.rollout.control import MAX_WEIGHT_BP, NEEDS_VERSION, ROLES, ControlMessageError, parse_control
from serving.rollout.control import control_message as message
from serving.rollout.lineup import Lineup, LineupStateError, Outcome, VersionEntry
from tests.unit.fuzz.mutations import exhaustive, fuzz_settings, mutated

CONTROLS = [
    message("wine", "promote", "v2", reason="better", issued_at=1_700_000_000_000, issued_by="ops"),
    message("wine", "rollback", issued_by="ops"),
    message("wine", "rollback", "v1"),
    message("wine", "pin", reason="freeze"),
    message("wine", "unpin"),
    message("wine", "set_role", "v3", role="canary", weight_bp=2500),
    message("wine", "set_weight", "v3", weight_bp=10_000),
    message("wine", "retire", "v4", reason="done"),
]
SEEDS = [c.SerializeToString() for c in CONTROLS]


def lineups() -> list[Lineup]:
    """A few lineups to apply parsed controls to: empty, pinned with a staged version, with every role."""
    empty = Lineup("wine")
    lineup = empty
    for version, created_at, role, weight in [
        ("v1", 100, "champion", 0),
        ("v2", 200, "shadow", 0),
        ("v3", 300, "canary", 500),
        ("v4", 400, "decoy", 0),
        ("v5", 500, "champion", 0),
    ]:
        lineup = lineup.accepted(VersionEntry(version, "rf", "sha", created_at), role, weight, now=created_at).lineup
    pinned = lineup.apply(message("wine", "pin")).lineup
    staged = pinned.accepted(VersionEntry("v6", "rf", "sha", 600), now=600).lineup
    return [empty, lineup, staged]


LINEUPS = lineups()
STATES = [lineup.to_bytes() for lineup in LINEUPS]


def parse(payload: bytes) -> ModelControl | None:
    """``parse_control(payload)``, None for its typed error; any other exception fails the test."""
    try:
        control = parse_control(payload)
    except ControlMessageError as exc:
        assert exc.reason == "bad control message" and str(exc)
        return None
    except Exception as exc:  # the bug this suite hunts
        pytest.fail(f"{type(exc).__name__} escaped parse_control: {str(exc)[:300]}")
    check_well_formed(control)
    return control


def check_well_formed(control: ModelControl) -> None:
    assert control.action in ModelControl.Action.values() and control.action != ModelControl.ACTION_UNSPECIFIED
    assert control.data_type
    assert control.target_version or control.action not in NEEDS_VERSION
    assert 0 <= control.weight_bp <= MAX_WEIGHT_BP
    assert control.role in ROLES or control.action != ModelControl.SET_ROLE


def check_applies(control: ModelControl) -> None:
    """Every sample lineup takes the control without raising, and its outcome survives the bytes."""
    for lineup in LINEUPS:
        outcome = lineup.apply(control, now=10_000)
        assert isinstance(outcome, Outcome)
        if outcome.rejected:
            assert outcome.lineup is lineup
        assert Lineup.from_bytes(outcome.lineup.to_bytes()) == outcome.lineup


def test_every_truncation_and_single_bit_flip_of_a_control_is_well_formed_or_a_typed_error():
    for seed in SEEDS:
        for payload in exhaustive(seed):
            control = parse(payload)
            if control is not None:
                check_applies(control)


@fuzz_settings(400)
@given(mutated(st.sampled_from(SEEDS), ModelControl.DESCRIPTOR))
def test_a_mutated_control_is_well_formed_or_a_typed_error(payload: bytes):
    control = parse(payload)
    if control is not None:
        check_applies(control)


@fuzz_settings(100)
@given(st.binary(max_size=256))
def test_random_bytes_are_a_well_formed_control_or_a_typed_error(payload: bytes):
    control = parse(payload)
    if control is not None:
        check_applies(control)


def decode_state(data: bytes) -> Lineup | None:
    """``Lineup.from_bytes(data)``, None for its typed error; any other exception fails the test."""
    try:
        return Lineup.from_bytes(data)
    except LineupStateError as exc:
        assert exc.reason == "bad lineup state" and str(exc)
        return None
    except Exception as exc:
        pytest.fail(f"{type(exc).__name__} escaped Lineup.from_bytes: {str(exc)[:300]}")


def check_lineup(lineup: Lineup) -> None:
    """A decoded lineup takes every seed control and a new champion without raising."""
    for control in CONTROLS:
        outcome = lineup.apply(control, now=10_000)
        assert Lineup.from_bytes(outcome.lineup.to_bytes()) == outcome.lineup
    outcome = lineup.accepted(VersionEntry("v99", created_at=2**40), now=10_000)
    assert Lineup.from_bytes(outcome.lineup.to_bytes()) == outcome.lineup


def test_every_truncation_and_single_bit_flip_of_a_lineup_state_is_a_lineup_or_a_typed_error():
    for seed in STATES:
        for data in exhaustive(seed):
            lineup = decode_state(data)
            if lineup is not None:
                check_lineup(lineup)


@fuzz_settings(300)
@given(mutated(st.sampled_from(STATES), LineupState.DESCRIPTOR))
def test_a_mutated_lineup_state_is_a_lineup_or_a_typed_error(data: bytes):
    lineup = decode_state(data)
    if lineup is not None:
        check_lineup(lineup)
