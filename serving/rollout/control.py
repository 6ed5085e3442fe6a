"""Control as data: ``ModelControl`` messages, decoded and checked before a lineup sees them.

A control message names a data type, an action and (mostly) a target
version; :func:`parse_control` turns its bytes into a ``ModelControl`` that
is well-formed, or raises :class:`ControlMessageError`, never anything else
(whatever the bytes, under either protobuf backend). Well-formed means:

* ``action`` is one of the defined actions (not ``ACTION_UNSPECIFIED``, not
  an unknown number);
* ``data_type`` is a data type name (``DATA_TYPE_PATTERN``);
* ``target_version`` is set for PROMOTE, SET_ROLE, SET_WEIGHT and RETIRE
  (ROLLBACK without one means "the previous champion"; PIN and UNPIN need none);
* SET_ROLE names a known role (:data:`ROLES`);
* ``weight_bp`` lies in 0..10000 (basis points) whatever the action.

Whether the action makes sense for the lineup (a known version, a canary to
weigh) is the lineup's decision (:meth:`serving.rollout.lineup.Lineup.apply`).
"""

from __future__ import annotations

from google.protobuf.message import DecodeError

from serving.errors import ConfigError, InputError
from serving.pb.model_control_pb2 import ModelControl
from serving.records.base import DATA_TYPE_PATTERN

Action = ModelControl.Action

#: The roles a version can hold in a data type's lineup.
CHAMPION, SHADOW, CANARY, DECOY = "champion", "shadow", "canary", "decoy"
ROLES = (CHAMPION, SHADOW, CANARY, DECOY)
#: The whole: a weight of 10000 basis points is every record.
MAX_WEIGHT_BP = 10_000
#: The descriptor metadata keys a model asks for its role with (and a canary for its weight, in basis points).
ROLE_KEY, WEIGHT_KEY = "role", "weight_bp"
#: Actions that act on a named version and mean nothing without one.
NEEDS_VERSION = frozenset({ModelControl.PROMOTE, ModelControl.SET_ROLE, ModelControl.SET_WEIGHT, ModelControl.RETIRE})


def role_metadata(role: str | None, weight_bp: int | None = None) -> dict[str, str]:
    """The descriptor metadata that asks for ``role`` (none for the champion) and, if given, a weight.

    What :func:`serving.rollout.keeper.requested_role` reads back; roles and
    weights are checked where they are applied, by the lineup.
    """
    metadata = {} if role in (None, CHAMPION) else {ROLE_KEY: role}
    if weight_bp is not None:
        metadata[WEIGHT_KEY] = str(weight_bp)
    return metadata


class ControlMessageError(InputError):
    """Control message bytes that are not a well-formed ``ModelControl`` (see :mod:`serving.rollout.control`)."""

    reason = "bad control message"


def parse_control(payload: bytes) -> ModelControl:
    """Decode and check ``ModelControl`` bytes; see the module docstring for what is checked.

    Raises:
        ControlMessageError: the bytes do not decode, or the message is not
            well-formed; the only exception this function raises.
    """
    if not payload:
        raise ControlMessageError("control message is empty")
    control = ModelControl()
    try:
        control.ParseFromString(payload)
    # DecodeError (upb), UnicodeDecodeError (pure Python, bad UTF-8), RecursionError (nested groups),
    # TypeError (not bytes at all).
    except (DecodeError, UnicodeDecodeError, RecursionError, TypeError, ValueError) as exc:
        raise ControlMessageError(f"control message is not a ModelControl: {str(exc)[:200]}") from exc
    check_control(control)
    return control


def check_control(control: ModelControl) -> None:
    """Raise :class:`ControlMessageError` unless ``control`` is well-formed (the module docstring's rules)."""
    action = control.action
    if action == ModelControl.ACTION_UNSPECIFIED:
        raise ControlMessageError("control message names no action")
    if action not in Action.values():
        raise ControlMessageError(f"control message has unknown action {action}")
    name = Action.Name(action)
    if not control.data_type:
        raise ControlMessageError(f"{name} control message names no data type")
    if not DATA_TYPE_PATTERN.fullmatch(control.data_type):
        raise ControlMessageError(f"{name} control message has a bad data type {control.data_type[:80]!r}")
    if action in NEEDS_VERSION and not control.target_version:
        raise ControlMessageError(f"{name} control message for {control.data_type!r} names no target version")
    if not 0 <= control.weight_bp <= MAX_WEIGHT_BP:
        raise ControlMessageError(
            f"{name} control message has weight {control.weight_bp} bp, outside 0..{MAX_WEIGHT_BP}"
        )
    if action == ModelControl.SET_ROLE and control.role not in ROLES:
        raise ControlMessageError(
            f"SET_ROLE control message has unknown role {control.role[:40]!r} (one of {', '.join(ROLES)})"
        )


def control_message(
    data_type: str,
    action: str | int,
    target_version: str = "",
    *,
    reason: str = "",
    role: str = "",
    weight_bp: int = 0,
    issued_at: int = 0,
    issued_by: str = "",
) -> ModelControl:
    """A ``ModelControl`` with these fields, unchecked (so tests can build bad ones too).

    ``action`` is an ``Action`` value or its name in any case (``"promote"``, ``"SET_WEIGHT"``).

    Raises:
        ConfigError: ``action`` names no action.
    """
    if isinstance(action, str):
        try:
            action = Action.Value(action.strip().upper().replace("-", "_"))
        except ValueError as exc:
            names = ", ".join(n.lower() for n in Action.keys()[1:])
            raise ConfigError(f"unknown control action {action!r} (one of {names})") from exc
    return ModelControl(
        data_type=data_type,
        action=action,
        target_version=target_version,
        reason=reason,
        role=role,
        weight_bp=weight_bp,
        issued_at=issued_at,
        issued_by=issued_by,
    )
