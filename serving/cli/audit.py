"""``modelserving audit RECORD_ID``: which model scored a record, when its version served, who signed it.

Reads the results and model-events topics from the beginning to their end
(``read_committed``: only what the jobs committed) and answers with
:func:`serving.rollout.audit.audit`: lines for a person, or one JSON document with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys

from serving.cli.kafka import add_kafka_args, kafka_settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``audit RECORD_ID``."""
    audit = subparsers.add_parser(
        "audit",
        help="which model scored a record, when it was deployed and retired, who signed it",
        description="Read the results and model-events topics to their end (committed messages only) and "
        "report each result of RECORD_ID: the model, version, artifact sha256 and role that scored it, where "
        "the record was read, when that version took and left its role, and who signed it.",
    )
    audit.add_argument("record_id", metavar="RECORD_ID")
    audit.add_argument("--json", action="store_true", help="one JSON document instead of lines")
    audit.add_argument(
        "--timeout", type=float, default=120.0, metavar="S", help="seconds to reach the end of each topic (120)"
    )
    add_kafka_args(audit)
    audit.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    """Read both topics, print the answer; a record never scored is a one-line error."""
    from serving.errors import ConfigError
    from serving.kafka.clients import check_reachable
    from serving.kafka.reading import topic_reader
    from serving.rollout.audit import audit_topics

    if args.timeout <= 0:
        raise ConfigError(f"--timeout must be more than 0, got {args.timeout:g}")
    settings = kafka_settings_from_args(args)
    check_reachable(settings)
    topics = settings.topics

    read = topic_reader(settings, args.timeout, purpose="audit")
    answer, skipped = audit_topics(args.record_id, read, topics.results, topics.model_events)
    if skipped:
        print(f"skipped {skipped} messages that did not decode", file=sys.stderr)
    if args.json:
        print(json.dumps(answer.as_dict(), indent=2))
    else:
        print("\n".join(answer.lines()))
    return 0
