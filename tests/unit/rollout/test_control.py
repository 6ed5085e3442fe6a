"""Control messages: what ``parse_control`` accepts, and the one typed error it raises for everything else."""

from __future__ import annotations

import pytest

from serving.errors import ConfigError, InputError
from serving.pb.model_control_pb2 import ModelControl
from serving.rollout.control import ControlMessageError, control_message, parse_control


def wire(**fields) -> bytes:
    return control_message(**fields).SerializeToString()


@pytest.mark.parametrize(
    ("action", "extra"),
    [
        ("promote", {"target_version": "v2"}),
        ("rollback", {"target_version": "v1"}),
        ("rollback", {}),  # to the previous champion
        ("pin", {}),
        ("unpin", {}),
        ("set_role", {"target_version": "v2", "role": "shadow"}),
        ("set_role", {"target_version": "v2", "role": "canary", "weight_bp": 500}),
        ("set_weight", {"target_version": "v2", "weight_bp": 0}),
        ("set_weight", {"target_version": "v2", "weight_bp": 10000}),
        ("retire", {"target_version": "v2"}),
    ],
)
def test_a_well_formed_control_message_parses_to_the_same_fields(action, extra):
    payload = wire(data_type="wine", action=action, reason="because", issued_at=1234, issued_by="ops", **extra)
    control = parse_control(payload)
    assert ModelControl.Action.Name(control.action) == action.upper()
    assert control.data_type == "wine"
    assert control.target_version == extra.get("target_version", "")
    assert control.role == extra.get("role", "")
    assert control.weight_bp == extra.get("weight_bp", 0)
    assert (control.reason, control.issued_at, control.issued_by) == ("because", 1234, "ops")


def test_the_builder_takes_action_names_in_any_case_and_enum_values():
    assert control_message("wine", "Set-Weight", "v1").action == ModelControl.SET_WEIGHT
    assert control_message("wine", ModelControl.RETIRE, "v1").action == 7
    with pytest.raises(ConfigError, match="unknown control action 'demote'"):
        control_message("wine", "demote")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"\x0a\x04wi", "not a ModelControl"),  # truncated string
        (b"\x1a\x02\xff\xfe\x08\x01", "not a ModelControl"),  # data_type (field 3) is not UTF-8
        (b"\x7b" * 100_000, "not a ModelControl"),  # 100,000 nested groups
        (b"\x0a\x04wine", "no action"),
        (b"\x1a\x04wine\x08\x63", "unknown action 99"),
        (wire(data_type="", action="pin"), "no data type"),
        (wire(data_type="Wine Red", action="pin"), "bad data type"),
        (wire(data_type="wine", action="promote"), "names no target version"),
        (wire(data_type="wine", action="set_role", role="shadow"), "names no target version"),
        (wire(data_type="wine", action="set_weight", weight_bp=10), "names no target version"),
        (wire(data_type="wine", action="retire"), "names no target version"),
        (wire(data_type="wine", action="set_weight", target_version="v1", weight_bp=10001), "outside 0..10000"),
        (wire(data_type="wine", action="set_weight", target_version="v1", weight_bp=-1), "outside 0..10000"),
        (wire(data_type="wine", action="set_role", target_version="v1", role="primary"), "unknown role 'primary'"),
        (wire(data_type="wine", action="set_role", target_version="v1"), "unknown role ''"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_a_bad_control_message_is_a_control_message_error(payload, message):
    with pytest.raises(ControlMessageError, match=message) as caught:
        parse_control(payload)
    assert caught.value.reason == "bad control message"
    assert isinstance(caught.value, InputError)


def test_a_tombstone_is_a_control_message_error():
    with pytest.raises(ControlMessageError, match="empty"):
        parse_control(None)  # type: ignore[arg-type]  # a Kafka record with a null value
