"""``modelserving publish`` and ``modelserving results``: feed a serving job over Kafka and watch it.

``publish data`` streams wine records, ``publish model`` sends one model,
``publish models`` cycles through a directory of models, ``results tail``
shows what the job scored. Each first checks that the broker answers, so a
down broker is one line naming its address, not a hang.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import deque
from pathlib import Path

from serving.cli.control import role_metadata
from serving.cli.ensembles import add_publish_ensemble
from serving.cli.kafka import add_kafka_args, kafka_settings_from_args
from serving.cli.models import parse_metadata, read_schema
from serving.errors import ConfigError
from serving.formats.registry import format_names
from serving.kafka.settings import KafkaSettings
from serving.records import wine
from serving.rollout.control import ROLE_KEY, WEIGHT_KEY

_DURATION = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``publish data|model|models`` and ``results tail``."""
    publish = subparsers.add_parser(
        "publish",
        help="publish records, models or data-type schemas to Kafka",
        description="Publish to the topics a serving job reads: records to the data topics, models to the "
        "models topic, data-type schemas to the data-types topic.",
    )
    commands = publish.add_subparsers(dest="publish_command", metavar="WHAT", required=True)

    schema = commands.add_parser(
        "schema",
        help="declare a data type: its Avro schema onto the data-types topic",
        description="Publish an Avro record schema (.avsc); its record name is the data type. Running jobs "
        "admit it (a new version must keep serving the data type's models) and read records of it from "
        "the topic data.<type>, which this creates when missing.",
    )
    schema.add_argument("path", type=Path, metavar="S.avsc")
    add_kafka_args(schema)
    schema.set_defaults(handler=run_publish_schema)

    data = commands.add_parser(
        "data",
        help="stream records at a steady rate: wine, or any data type with --schema",
        description="Stream records, keyed by record id and stamped with the send time. Without --schema: "
        "wine CSV rows as WineRecord messages to the data topic, ids the row number (with --count above the "
        "number of rows the CSV is sent again, ids then CYCLE-ROW). With --schema: the rows of --data (a CSV "
        "with a header row, or JSON lines) as records of that data type on data.<type>, in --format.",
    )
    data.add_argument("--data", type=Path, default=None, metavar="FILE", help="data file (default: the wine data)")
    data.add_argument("--schema", type=Path, default=None, metavar="S.avsc", help="the data type's Avro schema")
    data.add_argument(
        "--format", choices=["json", "avro", "protobuf"], default="json", help="wire format with --schema (json)"
    )
    data.add_argument("--rate", type=float, required=True, metavar="N", help="records per second; 0 = unpaced")
    data.add_argument("--count", type=int, default=None, metavar="N", help="records to send (default: every row)")
    data.add_argument("--data-type", default=wine.DATA_TYPE, metavar="T", help="data type (default: wine)")
    data.add_argument("--id-prefix", default="", metavar="P", help="prepended to every record id")
    add_kafka_args(data)
    data.set_defaults(handler=run_publish_data)

    model = commands.add_parser(
        "model",
        help="publish one model file or SavedModel directory",
        description="Publish one model as a ModelDescriptor, keyed by data type. It travels inline unless "
        "it is larger than inline_model_max_bytes, then by reference (its absolute path, which the serving "
        "job must see under one of its model roots).",
    )
    model.add_argument("path", type=Path, nargs="?", metavar="PATH", help="model file, or SavedModel directory")
    model.add_argument(
        "--location", default=None, metavar="URL",
        help="instead of PATH, for --type oip: the model server's base URL (its host on the allow-list)",
    )  # fmt: skip
    model.add_argument("--type", required=True, choices=format_names(), help="model format")
    model.add_argument("--data-type", default=wine.DATA_TYPE, metavar="T", help="data type it scores (default: wine)")
    model.add_argument("--name", default=None, help="model name (default: the file name without suffix)")
    model.add_argument("--version", default=None, help="version (default: 12 hex digits of the artifact's SHA-256)")
    model.add_argument("--description", default="", help="free text")
    model.add_argument("--metadata", action="append", default=[], metavar="KEY=VALUE", help="descriptor metadata")
    model.add_argument("--sign", type=Path, default=None, metavar="KEYFILE", help="sign with this Ed25519 private key")
    model.add_argument(
        "--role", default=None, metavar="ROLE",
        help="the role it joins its data type's lineup in: champion (default), shadow, canary or decoy",
    )  # fmt: skip
    model.add_argument(
        "--weight", default=None, metavar="W", help="with --role canary: its share of records, 0..1 (0.1 = 10%%)"
    )
    transport = model.add_mutually_exclusive_group()
    transport.add_argument("--by-reference", action="store_true", help="send the path, not the bytes")
    transport.add_argument("--inline", action="store_true", help="send the bytes; fail rather than go by reference")
    add_kafka_args(model)
    model.set_defaults(handler=run_publish_model)

    models = commands.add_parser(
        "models",
        help="publish the models of a directory one after another",
        description="Cycle through a directory of models, publishing one every --every. The directory's "
        "manifest.json (from `modelserving train`) lists them; without one, .pb, .pmml, .onnx files and "
        "SavedModel directories are published in name order.",
    )
    models.add_argument("directory", type=Path, metavar="DIR")
    models.add_argument("--every", required=True, metavar="DURATION", help="e.g. 60s, 500ms, 2m, or seconds")
    models.add_argument("--rounds", type=int, default=None, metavar="N", help="passes over DIR (default: forever)")
    models.add_argument("--data-type", default=wine.DATA_TYPE, metavar="T", help="data type (default: wine)")
    add_kafka_args(models)
    models.set_defaults(handler=run_publish_models)

    add_publish_ensemble(commands)

    results = subparsers.add_parser(
        "results", help="watch the serving results on Kafka", description="Read the results topic."
    )
    results_commands = results.add_subparsers(dest="results_command", metavar="ACTION", required=True)
    tail = results_commands.add_parser(
        "tail",
        help="show results as they are committed",
        description="Show committed results (read_committed) as a live table; one JSON line per result "
        "when stdout is not a terminal or with --json.",
    )
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest result, not the newest")
    tail.add_argument("--limit", type=int, default=None, metavar="N", help="stop after N results")
    tail.add_argument("--timeout", type=float, default=None, metavar="S", help="stop after S seconds without a result")
    tail.add_argument("--json", action="store_true", help="one JSON line per result instead of a table")
    add_kafka_args(tail)
    tail.set_defaults(handler=run_results_tail)


def parse_duration(text: str) -> float:
    """Seconds in ``"60s"``, ``"500ms"``, ``"2m"``, ``"1h"`` or plain ``"1.5"`` (seconds).

    Raises:
        ConfigError: anything else.
    """
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ConfigError(f"not a duration: {text!r} (use e.g. 60s, 500ms, 2m or plain seconds)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def _connected(args: argparse.Namespace) -> KafkaSettings:
    """Settings from the flags, once a broker has answered at them."""
    from serving.kafka.clients import check_reachable

    settings = kafka_settings_from_args(args)
    check_reachable(settings)
    return settings


def run_publish_data(args: argparse.Namespace) -> int:
    """Stream the CSV with a progress bar on stderr; a summary line at the end."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from serving.kafka.providers.data import publish_data, publish_records
    from serving.records.files import read_rows

    if args.rate < 0:
        raise ConfigError(f"--rate must be 0 (unpaced) or more, got {args.rate:g}")
    if args.count is not None and args.count < 0:
        raise ConfigError(f"--count must be 0 or more, got {args.count}")
    settings = _connected(args)
    if args.schema is not None:
        if args.data is None:
            raise ConfigError("--schema needs --data: a CSV with a header row, or JSON lines")
        schema = read_schema(args.schema)
        rows = len(read_rows(args.data, schema))
        topic, data_type = settings.data_topic_prefix + schema.data_type, schema.data_type
    else:
        csv_path = args.data or wine.reference_csv()
        rows = len(wine.read_wine_csv(csv_path).features)
        topic, data_type = settings.topics.data, args.data_type
    total = args.count if args.count is not None else rows
    console = Console(stderr=True)
    paced = f"{args.rate:g} records/s" if args.rate else "unpaced"
    started = time.monotonic()
    with Progress(
        TextColumn(f"[bold]{topic}[/] ({paced})"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("records", total=total, rate="")

        def progress(sent: int) -> None:
            elapsed = time.monotonic() - started
            bar.update(task, completed=sent, rate=f"{sent / elapsed:,.0f}/s" if elapsed > 0 else "")

        if args.schema is not None:
            sent = publish_records(
                settings, schema, args.data, wire_format=args.format, rate=args.rate, count=args.count,
                progress=progress,
            )  # fmt: skip
        else:
            sent = publish_data(
                settings,
                csv_path,
                rate=args.rate,
                count=args.count,
                data_type=args.data_type,
                id_prefix=args.id_prefix,
                progress=progress,
            )
    elapsed = time.monotonic() - started
    print(
        f"sent {sent} {data_type} records to {topic} at {settings.bootstrap_servers} "
        f"in {elapsed:.1f}s ({sent / elapsed if elapsed else 0:,.0f} records/s)",
        file=sys.stderr,
    )
    return 0


def run_publish_schema(args: argparse.Namespace) -> int:
    """Publish a data type's schema; one line says what went where."""
    from serving.kafka.providers.schemas import publish_schema

    schema = read_schema(args.path)
    settings = _connected(args)
    data_topic = publish_schema(settings, schema)
    print(
        f"published schema {schema.data_type} version {schema.version} (id {schema.schema_id}) to "
        f"{settings.topics.data_types} at {settings.bootstrap_servers}; its records go to {data_topic}"
    )
    return 0


def run_publish_model(args: argparse.Namespace) -> int:
    """Publish one model; one line says what went where."""
    from serving.kafka.providers.models import build_descriptor, publish_descriptor

    metadata = parse_metadata(args.metadata)
    if (args.role is not None or args.weight is not None) and {ROLE_KEY, WEIGHT_KEY} & metadata.keys():
        raise ConfigError("give the role with --role and --weight, not also as --metadata role=/weight_bp=")
    metadata.update(role_metadata(args.role, args.weight))
    remote = args.type == "oip"
    if remote and (args.location is None or args.path is not None):
        raise ConfigError("a remote model (--type oip) takes --location URL and no PATH")
    if not remote and (args.path is None or args.location is not None):
        raise ConfigError(f"a {args.type} model takes a PATH (--location is for --type oip)")
    if remote:  # the descriptor first: a bad location is an error before any connection
        from serving.formats.remote.oip import remote_descriptor

        descriptor = remote_descriptor(
            args.location, data_type=args.data_type, name=args.name, version=args.version,
            description=args.description, metadata=metadata,
        )  # fmt: skip
        if args.sign is not None:  # the job's artifact of a remote model is its checked URL
            from serving.governance.signing import sign_with_file

            sign_with_file(descriptor, descriptor.location.encode(), args.sign)
        settings = _connected(args)
        publish_descriptor(settings, descriptor)
        print(_published_line(descriptor, settings))
        return 0
    # The descriptor first (signing included): a bad file or key is an error before any connection.
    settings = kafka_settings_from_args(args)
    descriptor = build_descriptor(
        settings,
        args.path,
        args.type,
        data_type=args.data_type,
        name=args.name,
        version=args.version,
        by_reference=args.by_reference,
        force_inline=args.inline,
        description=args.description,
        metadata=metadata,
        sign_with=args.sign,
    )
    settings = _connected(args)
    publish_descriptor(settings, descriptor)
    print(_published_line(descriptor, settings))
    return 0


def run_publish_models(args: argparse.Namespace) -> int:
    """Cycle through a model directory; one line per model published."""
    from serving.kafka.providers.models import cycle_models

    every = parse_duration(args.every)
    if args.rounds is not None and args.rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {args.rounds}")
    settings = _connected(args)
    count = cycle_models(
        settings,
        args.directory,
        every_seconds=every,
        data_type=args.data_type,
        rounds=args.rounds,
        on_publish=lambda descriptor: print(_published_line(descriptor, settings), flush=True),
    )
    print(f"published {count} models", file=sys.stderr)
    return 0


def run_results_tail(args: argparse.Namespace) -> int:
    """Show results: a live table on a terminal, else JSON lines."""
    from contextlib import closing

    from serving.kafka.providers.results import tail_results

    if args.limit is not None and args.limit < 0:
        raise ConfigError(f"--limit must be 0 or more, got {args.limit}")
    if args.timeout is not None and args.timeout < 0:
        raise ConfigError(f"--timeout must be 0 or more, got {args.timeout:g}")
    settings = _connected(args)
    results = tail_results(settings, from_beginning=args.from_beginning, limit=args.limit, timeout=args.timeout)
    # closing(): on Ctrl-C the consumer is closed here, not whenever the generator is collected.
    with closing(results):
        if args.json or not sys.stdout.isatty():
            from serving.codecs.outputs import result_to_json

            count = 0
            for result in results:
                print(result_to_json(result), flush=True)
                count += 1  # noqa: SIM113 (no enumerate: zero results must count 0)
        else:
            count = _live_table(results, settings.topics.results)
    print(f"{count} results from {settings.topics.results}", file=sys.stderr)
    return 0


def _live_table(results, topic: str) -> int:
    """Render results in a rich live table holding the latest rows that fit the terminal."""
    from rich.console import Console
    from rich.live import Live
    from rich.table import Table

    console = Console()
    shown: deque = deque(maxlen=max(console.size.height - 8, 5))
    count = 0

    def render() -> Table:
        table = Table(title=f"{topic}: {count} results", title_justify="left")
        table.add_column("record id")
        table.add_column("data type")
        table.add_column("model")
        table.add_column("version")
        table.add_column("score", justify="right")
        table.add_column("duration µs", justify="right")
        for row in shown:
            table.add_row(*row)
        return table

    with Live(render(), console=console, refresh_per_second=4) as live:
        for result in results:
            count += 1
            score = f"error: {result.error}" if result.error else f"{result.score:.4g}"
            shown.append(
                (
                    result.record_id,
                    result.data_type,
                    result.model_name,
                    result.model_version,
                    score,
                    f"{result.duration_ns / 1000:,.1f}",
                )
            )
            live.update(render())
    return count


def _published_line(descriptor, settings: KafkaSettings) -> str:
    from serving.core.model import ModelType

    if descriptor.WhichOneof("content") == "data":
        how = f"inline, {len(descriptor.data):,} bytes"
    elif descriptor.format == "oip":
        how = f"remote, {descriptor.location}"
    else:
        how = f"by reference, {descriptor.location}"
    kind = descriptor.format or ModelType.Name(descriptor.model_type).lower()
    return (
        f"published {descriptor.name} version {descriptor.version} ({kind}, "
        f"{how}) for {descriptor.data_type} to {settings.topics.models} at {settings.bootstrap_servers}"
    )
