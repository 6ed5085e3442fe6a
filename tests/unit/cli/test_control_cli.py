"""``modelserving control``: flags to a checked ModelControl, sent keyed by data type with acks=all; one-line errors.

Kafka is replaced: the reachability check by a no-op and the producer by a fake
that records what was produced. What was sent is read back with the job's own
parser (:func:`serving.rollout.control.parse_control`).
"""

from __future__ import annotations

import pytest

from serving.cli import main
from serving.kafka import clients
from serving.kafka.providers import control as provider
from serving.pb.model_control_pb2 import ModelControl
from serving.rollout.control import parse_control

BROKER = ["--bootstrap-servers", "127.0.0.1:9"]


class FakeProducer:
    """Acknowledges (or fails) every message at flush; records the config it was made with and what it got."""

    def __init__(self, config: dict, error=None):
        self.config, self.error, self.sent, self._callbacks = config, error, [], []

    def produce(self, topic, value, key=None, on_delivery=None):
        self.sent.append((topic, key, value))
        self._callbacks.append(on_delivery)

    def poll(self, timeout):
        return 0

    def flush(self, timeout):
        for callback in self._callbacks:
            callback(self.error, None)
        self._callbacks.clear()
        return 0


@pytest.fixture
def kafka(monkeypatch):
    """No broker: the check passes, the topic exists, producers are fakes (returned in a list)."""
    made: list[FakeProducer] = []
    state = {"error": None}

    def make(settings, **overrides):
        made.append(FakeProducer(overrides, state["error"]))
        return made[-1]

    monkeypatch.setattr(clients, "check_reachable", lambda settings, timeout=5.0: None)
    monkeypatch.setattr(provider, "require_topic", lambda client, settings, topic: [0])
    monkeypatch.setattr(provider, "producer", make)
    return made, state


def sent_control(made) -> tuple[str, bytes, ModelControl]:
    assert len(made) == 1 and len(made[0].sent) == 1
    topic, key, value = made[0].sent[0]
    return topic, key, parse_control(value)


def test_set_role_canary_with_a_weight_is_sent_keyed_by_data_type_with_acks_all(kafka, capsys):
    made, _ = kafka
    argv = ["control", "set-role", "wine", "--version", "v2", "--role", "canary", "--weight", "0.2",
            "--reason", "try it", "--by", "alice", *BROKER]  # fmt: skip
    assert main(argv) == 0
    topic, key, control = sent_control(made)
    assert (topic, key) == ("model-control", b"wine")
    assert made[0].config["acks"] == "all"
    assert control.action == ModelControl.SET_ROLE
    assert (control.data_type, control.target_version, control.role, control.weight_bp) == (
        "wine",
        "v2",
        "canary",
        2000,
    )
    assert (control.reason, control.issued_by) == ("try it", "alice")
    assert control.issued_at > 1_700_000_000_000  # stamped now, epoch ms
    out = capsys.readouterr().out.strip().splitlines()
    assert out == [
        "sent SET_ROLE wine version v2 role canary weight 2000 bp (reason 'try it', by alice) "
        "to model-control at 127.0.0.1:9"
    ]


@pytest.mark.parametrize(
    "args, action, version, weight_bp",
    [
        (["promote", "wine", "--version", "v2"], ModelControl.PROMOTE, "v2", 0),
        (["rollback", "wine"], ModelControl.ROLLBACK, "", 0),
        (["rollback", "wine", "--version", "v1"], ModelControl.ROLLBACK, "v1", 0),
        (["pin", "wine"], ModelControl.PIN, "", 0),
        (["unpin", "wine"], ModelControl.UNPIN, "", 0),
        (["retire", "wine", "--version", "v3"], ModelControl.RETIRE, "v3", 0),
        (["set-weight", "wine", "--version", "v2", "--weight", "0.05"], ModelControl.SET_WEIGHT, "v2", 500),
        (["set-weight", "wine", "--version", "v2", "--weight", "1"], ModelControl.SET_WEIGHT, "v2", 10000),
        (["set-weight", "wine", "--version", "v2", "--weight", "0"], ModelControl.SET_WEIGHT, "v2", 0),
    ],
)
def test_each_action_becomes_its_message(kafka, args, action, version, weight_bp):
    made, _ = kafka
    assert main(["control", *args, "--by", "bob", *BROKER]) == 0
    _, _, control = sent_control(made)
    assert (control.action, control.target_version, control.weight_bp) == (action, version, weight_bp)
    assert (control.data_type, control.issued_by) == ("wine", "bob")


@pytest.mark.parametrize(
    "args, message",
    [
        (["promote", "wine"], "PROMOTE control message for 'wine' names no target version"),
        (["retire", "wine"], "RETIRE control message for 'wine' names no target version"),
        (["pin", "wine", "--version", "v1"], "pin acts on the data type's champion and takes no --version"),
        (["set-weight", "wine", "--version", "v2"], "set-weight needs --weight"),
        (["set-weight", "wine", "--version", "v2", "--weight", "1.5"], "--weight must lie between 0 and 1"),
        (["set-weight", "wine", "--version", "v2", "--weight", "-0.1"], "--weight must lie between 0 and 1"),
        (["set-weight", "wine", "--version", "v2", "--weight", "nan"], "--weight must lie between 0 and 1"),
        (["set-weight", "wine", "--version", "v2", "--weight", "lots"], "--weight takes a fraction"),
        (["set-weight", "wine", "--version", "v2", "--weight", "0.00005"], "finer than a basis point"),
        (["promote", "wine", "--version", "v2", "--weight", "0.1"], "--weight is for set-weight or set-role"),
        (["set-role", "wine", "--version", "v2", "--role", "shadow", "--weight", "0.1"], "--weight is for"),
        (["set-role", "wine", "--version", "v2", "--role", "king"], "unknown role 'king'"),
        (["set-role", "wine", "--version", "v2"], "set-role needs --role"),
        (["promote", "wine", "--version", "v2", "--role", "shadow"], "--role is for set-role, not promote"),
        (["promote", "Wine!", "--version", "v2"], "bad data type 'Wine!'"),
    ],
)
def test_bad_flags_are_one_line_and_nothing_is_sent(kafka, capsys, args, message):
    made, _ = kafka
    assert main(["control", *args, *BROKER]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("modelserving control: error: ") and message in err[0], err
    assert made == []


def test_an_unknown_action_is_a_usage_error(kafka, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["control", "demote", "wine", *BROKER])
    assert exit_.value.code == 2
    assert "invalid choice: 'demote'" in capsys.readouterr().err


def test_an_unacknowledged_message_is_one_line(kafka, capsys):
    _, state = kafka
    state["error"] = type("Err", (), {"str": lambda self: "Broker: Not enough in-sync replicas"})()
    assert main(["control", "pin", "wine", *BROKER]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "modelserving control: error: PIN for wine was not delivered to model-control at 127.0.0.1:9: "
        "Broker: Not enough in-sync replicas"
    ]
