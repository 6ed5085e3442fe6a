"""``modelserving publish ensemble FILE.json``: several models as one, with a decider and a latency budget."""

from __future__ import annotations

import argparse
from pathlib import Path

from serving.cli.kafka import add_kafka_args


def add_publish_ensemble(commands: argparse._SubParsersAction) -> None:
    """Add ``publish ensemble`` to the ``publish`` commands."""
    ensemble = commands.add_parser(
        "ensemble",
        help="publish an ensemble: member models, a decider and a latency budget (docs/ensembles.md)",
        description="Publish an ensemble described by a JSON file: its members (model files with their type, "
        "or model-server URLs), the decider that picks each record's answer, the latency budget and its mode. "
        "The member files travel inline. Everything is checked before the broker is contacted.",
    )
    ensemble.add_argument("path", type=Path, metavar="FILE.json")
    add_kafka_args(ensemble)
    ensemble.set_defaults(handler=run_publish_ensemble)


def run_publish_ensemble(args: argparse.Namespace) -> int:
    """Build the ensemble's descriptor (no connection yet), then publish it; one line says what went where."""
    from serving.cli.publish import _connected
    from serving.formats.ensemble.publishing import ensemble_descriptor
    from serving.kafka.providers.models import publish_descriptor

    descriptor = ensemble_descriptor(args.path)
    settings = _connected(args)
    publish_descriptor(settings, descriptor)
    print(
        f"published ensemble {descriptor.name} version {descriptor.version} ({len(descriptor.data):,} bytes) "
        f"for {descriptor.data_type} to {settings.topics.models} at {settings.bootstrap_servers}"
    )
    return 0
