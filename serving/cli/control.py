"""``modelserving control``: an operator's decision about a data type's versions, as a ModelControl message.

``control ACTION DATA_TYPE [--version V] [--role R] [--weight W] [--reason TEXT] [--by WHO]`` checks
the message with the domain's rules (:mod:`serving.rollout.control`) before any
connection, sends it to the control topic keyed by the data type (acks=all)
and prints one line of what was sent. What the running job made of it is on
the model-events topic (PROMOTED, ROLLED_BACK ... or CONTROL_REJECTED).
"""

from __future__ import annotations

import argparse
import getpass
from decimal import Decimal, InvalidOperation

from serving.cli.kafka import add_kafka_args, kafka_settings_from_args
from serving.clock import now_ms
from serving.errors import ConfigError
from serving.pb.model_control_pb2 import ModelControl
from serving.rollout.control import CANARY, MAX_WEIGHT_BP, ROLES, check_control, control_message
from serving.rollout.control import role_metadata as domain_role_metadata

#: The actions as the command line spells them, with what each does.
ACTIONS = {
    "promote": "make --version (a shadow, canary or staged version) the champion",
    "rollback": "make --version, or the previous champion, the champion again",
    "pin": "freeze the champion: newly accepted champions are staged",
    "unpin": "lift the pin and activate the newest staged version",
    "retire": "take --version out of its role (never the champion)",
    "set-role": "give --version the role --role (a canary also --weight)",
    "set-weight": "set the canary --version's share of records to --weight",
}
_NO_VERSION = frozenset({"pin", "unpin"})
_TAKES_WEIGHT = frozenset({"set-weight", "set-role"})


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``control ACTION DATA_TYPE``."""
    control = subparsers.add_parser(
        "control",
        help="promote, roll back, pin ... the versions of a data type (a ModelControl message)",
        description="Send one ModelControl to the control topic, keyed by the data type. Actions: "
        + "; ".join(f"{name}: {what}" for name, what in ACTIONS.items())
        + ". The running job reports the outcome on the model-events topic.",
    )
    control.add_argument("action", choices=list(ACTIONS), metavar="ACTION", help=", ".join(ACTIONS))
    control.add_argument("data_type", metavar="DATA_TYPE", help="the data type whose lineup it acts on, e.g. wine")
    control.add_argument("--version", default="", metavar="V", help="the version acted on")
    control.add_argument("--role", default="", metavar="R", help=f"set-role: one of {', '.join(ROLES)}")
    control.add_argument(
        "--weight", default=None, metavar="W", help="a canary's share of records, a fraction 0..1 (0.2 = 20%%)"
    )
    control.add_argument("--reason", default="", metavar="TEXT", help="why, kept in the audit trail")
    control.add_argument("--by", default=None, metavar="WHO", help="who issues it (default: your user name)")
    add_kafka_args(control)
    control.set_defaults(handler=run_control)


def parse_weight(text: str) -> int:
    """A fraction of the records, ``"0.2"``, as basis points (2000); whole basis points only.

    Raises:
        ConfigError: not a number, outside 0..1, or finer than a basis point.
    """
    try:
        fraction = Decimal(text.strip())
    except InvalidOperation as exc:
        raise ConfigError(f"--weight takes a fraction of the records from 0 to 1 (0.2 = 20%), got {text!r}") from exc
    if not fraction.is_finite() or not 0 <= fraction <= 1:
        raise ConfigError(f"--weight must lie between 0 and 1 (0.2 = 20% of the records), got {text!r}")
    basis_points = fraction * MAX_WEIGHT_BP
    if basis_points != basis_points.to_integral_value():
        raise ConfigError(f"--weight {text} is finer than a basis point (0.0001)")
    return int(basis_points)


def build_control(args: argparse.Namespace, issued_at: int | None = None) -> ModelControl:
    """The checked ``ModelControl`` the flags ask for.

    Raises:
        ConfigError: a flag that makes no sense for the action.
        ControlMessageError: the message breaks the domain's rules (no version for promote ...).
    """
    action = args.action
    if action in _NO_VERSION and args.version:
        raise ConfigError(f"{action} acts on the data type's champion and takes no --version")
    if args.role and action != "set-role":
        raise ConfigError(f"--role is for set-role, not {action}")
    if action == "set-role" and not args.role:
        raise ConfigError(f"set-role needs --role ({', '.join(ROLES)})")
    weight_bp = 0
    if args.weight is not None:
        if action not in _TAKES_WEIGHT or (action == "set-role" and args.role != CANARY):
            raise ConfigError(f"--weight is for set-weight or set-role --role {CANARY}, not {_spelt(args)}")
        weight_bp = parse_weight(args.weight)
    elif action == "set-weight":
        raise ConfigError("set-weight needs --weight, a fraction 0..1 (0.2 = 20% of the records)")
    control = control_message(
        args.data_type,
        action,
        args.version,
        reason=args.reason,
        role=args.role,
        weight_bp=weight_bp,
        issued_at=now_ms() if issued_at is None else issued_at,
        issued_by=_issuer(args.by),
    )
    check_control(control)
    return control


def describe(control: ModelControl) -> str:
    """``PROMOTE wine version v2 (reason "...", by alice)``: what the message asks."""
    parts = [ModelControl.Action.Name(control.action), control.data_type]
    if control.target_version:
        parts.append(f"version {control.target_version}")
    if control.action == ModelControl.SET_ROLE:
        parts.append(f"role {control.role}")
    if control.action == ModelControl.SET_WEIGHT or (control.action == ModelControl.SET_ROLE and control.weight_bp):
        parts.append(f"weight {control.weight_bp} bp")
    extras = [f"reason {control.reason!r}"] if control.reason else []
    if control.issued_by:
        extras.append(f"by {control.issued_by}")
    return " ".join(parts) + (f" ({', '.join(extras)})" if extras else "")


def run_control(args: argparse.Namespace) -> int:
    """Check the message, send it, print one line."""
    from serving.kafka.clients import check_reachable
    from serving.kafka.providers.control import publish_control

    control = build_control(args)  # before any connection: a bad flag is one line, not a timeout
    settings = kafka_settings_from_args(args)
    check_reachable(settings)
    publish_control(settings, control)
    print(f"sent {describe(control)} to {settings.topics.control} at {settings.bootstrap_servers}")
    return 0


def _issuer(by: str | None) -> str:
    if by is not None:
        return by
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name in this environment: leave it unsaid
        return ""


def _spelt(args: argparse.Namespace) -> str:
    return f"set-role --role {args.role}" if args.action == "set-role" else args.action


def role_metadata(role: str | None, weight: str | None) -> dict[str, str]:
    """The descriptor metadata of ``publish model --role R [--weight W]``: none for the champion (the default).

    Raises:
        ConfigError: an unknown role, or ``--weight`` without ``--role canary``.
    """
    if role is not None and role not in ROLES:
        raise ConfigError(f"--role must be one of {', '.join(ROLES)}, got {role!r}")
    if weight is not None and role != CANARY:
        raise ConfigError(f"--weight is for --role {CANARY} only (the share of records a canary serves)")
    return domain_role_metadata(role, None if weight is None else parse_weight(weight))
