"""``modelserving kafka``: the local broker and topics; the Kafka flags every Kafka command shares."""

from __future__ import annotations

import argparse
import typing
from pathlib import Path

from serving.errors import ConfigError
from serving.kafka.settings import CONFIG_ENV, KafkaSettings
from serving.ops.broker import DEFAULT_STATE, LocalBroker

#: ``kafka status`` exits with this when the broker is stopped (0 when it runs).
EXIT_STOPPED = 3
PASSWORD_ENV = "MODELSERVING_KAFKA_SASL_PASSWORD"

_PROTOCOLS = typing.get_args(KafkaSettings.model_fields["security_protocol"].annotation)
_MECHANISMS = tuple(
    m for arg in typing.get_args(KafkaSettings.model_fields["sasl_mechanism"].annotation) for m in typing.get_args(arg)
)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``kafka start|stop|status|topics|reset``."""
    kafka = subparsers.add_parser(
        "kafka",
        help="run the local development broker and create the topics",
        description="Start, stop or inspect the local single-node Kafka broker (loopback only, data under "
        "--state-dir), and create the serving topics on any broker.",
    )
    commands = kafka.add_subparsers(dest="kafka_command", metavar="ACTION", required=True)

    start = commands.add_parser("start", help="start the local broker (a no-op when it runs)")
    start.add_argument(
        "--port", type=_port, default=9092, help="broker port; another free one if taken, 0 for any (default 9092)"
    )
    _add_state_dir(start)
    start.set_defaults(handler=run_start)

    stop = commands.add_parser("stop", help="stop the local broker (a no-op when stopped)")
    _add_state_dir(stop)
    stop.set_defaults(handler=run_stop)

    status = commands.add_parser(
        "status", help=f"print whether the local broker runs; exit 0 if so, {EXIT_STOPPED} if not"
    )
    _add_state_dir(status)
    status.set_defaults(handler=run_status)

    topics = commands.add_parser("topics", help="create every serving topic that does not exist; print them")
    topics.add_argument("--partitions", type=int, default=None, metavar="N", help="partitions of new topics")
    _add_state_dir(topics)
    add_kafka_args(topics)
    topics.set_defaults(handler=run_topics)

    reset = commands.add_parser("reset", help="stop the local broker and delete its data")
    _add_state_dir(reset)
    reset.set_defaults(handler=run_reset)


def add_kafka_args(parser: argparse.ArgumentParser) -> None:
    """The connection flags of every Kafka-using subcommand.

    The SASL password is deliberately not a flag (it would show in ``ps`` and
    shell history): it comes from ``$MODELSERVING_KAFKA_SASL_PASSWORD`` or the config file.
    """
    group = parser.add_argument_group(
        "Kafka connection",
        f"Flags override MODELSERVING_KAFKA_* variables, which override the config file. Without any "
        f"bootstrap setting, a running local broker (`modelserving kafka start`) is used. The SASL password "
        f"comes from ${PASSWORD_ENV} or the config file only.",
    )
    group.add_argument("--bootstrap-servers", default=None, metavar="HOST:PORT[,...]", help="Kafka bootstrap servers")
    group.add_argument(
        "--kafka-config", type=Path, default=None, metavar="FILE", help=f"TOML file, [kafka] table (${CONFIG_ENV})"
    )
    group.add_argument("--security-protocol", type=str.upper, choices=_PROTOCOLS, default=None)
    group.add_argument("--sasl-mechanism", type=str.upper, choices=_MECHANISMS, default=None)
    group.add_argument("--sasl-username", default=None, metavar="USER")
    group.add_argument("--group-id", default=None, metavar="ID", help="consumer group id")


def kafka_settings_from_args(args: argparse.Namespace) -> KafkaSettings:
    """Settings from the flags of :func:`add_kafka_args`, the environment and the config file.

    When none of them sets the bootstrap servers and the local broker (of
    ``args.state_dir``, else the default state directory) runs, its address is used.

    Raises:
        ConfigError: the config file is unreadable or a value is invalid.
    """
    overrides = {
        "bootstrap_servers": getattr(args, "bootstrap_servers", None),
        "security_protocol": getattr(args, "security_protocol", None),
        "sasl_mechanism": getattr(args, "sasl_mechanism", None),
        "sasl_username": getattr(args, "sasl_username", None),
        "group_id": getattr(args, "group_id", None),
    }
    config_file = getattr(args, "kafka_config", None)
    settings = KafkaSettings.load(config_file, **overrides)
    if "bootstrap_servers" not in settings.model_fields_set:
        # Nobody chose a broker: the local one, wherever `kafka start` put it (it may not be on 9092).
        status = LocalBroker(getattr(args, "state_dir", None) or DEFAULT_STATE).status()
        if status.running and status.bootstrap:
            settings = KafkaSettings.load(config_file, **{**overrides, "bootstrap_servers": status.bootstrap})
    return settings


def run_start(args: argparse.Namespace) -> int:
    """Start the broker and print its status line."""
    status = LocalBroker(args.state_dir).start(port=args.port)
    print(status.line())
    return 0


def run_stop(args: argparse.Namespace) -> int:
    """Stop the broker and print its status line."""
    print(LocalBroker(args.state_dir).stop().line())
    return 0


def run_status(args: argparse.Namespace) -> int:
    """Print the status line; exit 0 when running, ``EXIT_STOPPED`` when not."""
    status = LocalBroker(args.state_dir).status()
    print(status.line())
    return 0 if status.running else EXIT_STOPPED


def run_topics(args: argparse.Namespace) -> int:
    """Create the missing topics and print role and name of each."""
    from serving.kafka.clients import check_reachable, ensure_topics

    if args.partitions is not None and args.partitions < 1:
        raise ConfigError(f"--partitions must be at least 1, got {args.partitions}")
    settings = kafka_settings_from_args(args)
    check_reachable(settings)
    topics = ensure_topics(settings, partitions=args.partitions)
    width = max(len(role) for role in topics)
    print(f"topics at {settings.bootstrap_servers}:")
    for role, topic in topics.items():
        print(f"  {role.ljust(width)}  {topic}")
    return 0


def run_reset(args: argparse.Namespace) -> int:
    """Stop the broker and delete its data."""
    broker = LocalBroker(args.state_dir)
    broker.reset()
    print(f"kafka stopped and its data deleted (state {broker.state_dir})")
    return 0


def _add_state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE,
        metavar="DIR",
        help="the local broker's data, config, log and pid file (default .cache/kafka)",
    )


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port < 65536:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port
