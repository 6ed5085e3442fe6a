"""``modelserving run``: a serving job over a wine CSV in a local MiniCluster."""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import time
from pathlib import Path

from serving.cli.models import parse_model_spec, read_schema
from serving.errors import ConfigError
from serving.records import wine
from serving.records.files import read_rows
from serving.records.wire import PROTOBUF, encode


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run``."""
    run = subparsers.add_parser(
        "run",
        help="run a serving job on a data file in a local Flink MiniCluster",
        description="Run the keyed or partitioned job locally: the first model is published before the data, "
        "each further model after every N records. Results go to FILE as JSON lines, dead letters to "
        "FILE.deadletters and stats to FILE.stats. With --schema the data is a CSV with a header row or JSON "
        "lines of that data type (a record's id is its schema's id field, else its 0-based row); without, wine. "
        "--shadow, --canary and --decoy add challengers (docs/rollout.md): FILE.comparisons, FILE.archive.",
    )
    run.add_argument("job", choices=["keyed", "partitioned"])
    run.add_argument("--data", type=Path, default=None, help="data file (default: the shipped wine data)")
    run.add_argument("--schema", type=Path, default=None, metavar="S.avsc", help="the data type's Avro schema")
    run.add_argument("--model", action="append", required=True, metavar="PATH:TYPE", help="repeat to swap models")
    run.add_argument("--swap-every", type=int, default=500, metavar="N", help="records between models (500)")
    run.add_argument("--out", type=Path, required=True, metavar="FILE", help="results file (JSON lines)")
    run.add_argument("--parallelism", type=int, default=1)
    run.add_argument("--early-records", choices=["hold", "drop"], default="hold")
    run.add_argument("--state-backend", choices=["hashmap", "rocksdb"], default="hashmap")
    run.add_argument("--checkpoint-interval", type=int, default=1000, metavar="MS")
    run.add_argument(
        "--shadow", action="append", default=[], metavar="PATH:TYPE",
        help="a shadow: scores every record beside the champion, never served; comparisons go to FILE.comparisons",
    )  # fmt: skip
    run.add_argument(
        "--canary", default=None, metavar="PATH:TYPE@WEIGHT",
        help="a canary serving WEIGHT (0..1) of the records, chosen by a hash of their id",
    )  # fmt: skip
    run.add_argument("--decoy", action="store_true", help="archive every input as the models saw it to FILE.archive")
    run.set_defaults(handler=run_job)


def run_job(args: argparse.Namespace) -> int:
    """Encode the CSV and models, run the job to the end, write outputs and a summary."""
    from pydantic import ValidationError
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from flink_jobs.environment import create_environment
    from flink_jobs.io.files import CollectionIO, read_json_lines
    from flink_jobs.jobs import build_job
    from serving.clock import now_ms
    from serving.formats import descriptor_from_path
    from serving.records.wine import encode_record
    from serving.settings import JOB_NAMES, JobSettings, ServingOptions, config_error

    if args.swap_every < 1:
        raise ConfigError("--swap-every must be at least 1")
    if args.parallelism < 1:
        raise ConfigError("--parallelism must be at least 1")
    console = Console(stderr=True)
    start = now_ms()
    # Event time encodes the publication order: record i at start+i, model k at start+k*N.
    if args.schema is None:
        data = wine.read_wine_csv(args.data or wine.reference_csv())
        records = [encode_record(str(i), row, ts=start + i) for i, row in enumerate(data.features)]
        data_type, schemas = wine.DATA_TYPE, ()
    else:
        schema = read_schema(args.schema)
        if args.data is None:
            raise ConfigError("--schema needs --data: a CSV with a header row, or JSON lines")
        rows = read_rows(args.data, schema)
        records = [(encode(row, schema, PROTOBUF, ts=start + i), start + i) for i, row in enumerate(rows)]
        data_type, schemas = schema.data_type, (schema.avsc,)
    # Challengers first: the lineup knows them before any record is due.
    models = challenger_messages(args.shadow, args.canary, args.decoy, args.model[0], data_type, start)
    for k, spec in enumerate(args.model):
        path, model_type = parse_model_spec(spec)
        descriptor = descriptor_from_path(path, model_type, version=f"{k + 1}-{path.stem}", data_type=data_type)
        descriptor.created_at = start + k * args.swap_every
        models.append(descriptor.SerializeToString())

    work = args.out.with_name(args.out.name + ".parts")
    shutil.rmtree(work, ignore_errors=True)
    try:
        settings = JobSettings(
            job=args.job,
            parallelism=args.parallelism,
            checkpoint_interval_ms=args.checkpoint_interval,
            state_backend=args.state_backend,
            options=ServingOptions(early_records=args.early_records, startup_schemas=schemas),
        )
    except ValidationError as exc:
        raise config_error(exc, "job setting") from exc
    console.print(
        f"[bold]{JOB_NAMES[args.job]}[/] on a local MiniCluster: {len(records)} records, {len(models)} model(s), "
        f"parallelism {args.parallelism}"
    )
    env = create_environment(settings)
    build_job(env, settings, CollectionIO(records, models, work))
    started = time.monotonic()
    client = env.execute_async(JOB_NAMES[args.job])
    columns = [TextColumn("scored (committed)"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("scoring", total=len(records))
        while not client.get_job_execution_result().done():
            progress.update(task, completed=len(read_json_lines(work, "results")))
            time.sleep(1.0)
        client.get_job_execution_result().result()
        results = read_json_lines(work, "results")
        progress.update(task, completed=len(results))
    elapsed = time.monotonic() - started

    results.sort(key=lambda r: int(r["record_id"]))
    dead = read_json_lines(work, "dead-letters")
    stats = read_json_lines(work, "stats")
    events = read_json_lines(work, "model-events")
    _write_lines(args.out, results)
    _write_lines(args.out.with_name(args.out.name + ".deadletters"), dead)
    _write_lines(args.out.with_name(args.out.name + ".stats"), stats)
    _write_lines(args.out.with_name(args.out.name + ".events"), events)
    for output in ("comparisons", "archive"):
        rows = read_json_lines(work, output)
        if rows:
            _write_lines(args.out.with_name(f"{args.out.name}.{output}"), rows)
    shutil.rmtree(work, ignore_errors=True)
    _summary(console, results, dead, events, elapsed, args.out)
    return 0


def challenger_messages(
    shadows: list[str], canary: str | None, decoy: bool, champion: str, data_type: str, start: int
) -> list[bytes]:
    """Descriptors of ``run``'s challengers, each with its role (a canary ``PATH:TYPE@WEIGHT``, WEIGHT in 0..1).

    The decoy is the champion's artifact in the decoy role: it scores nothing, it makes the job archive.
    """
    from serving.cli.control import role_metadata
    from serving.formats import descriptor_from_path

    specs = [(spec, "shadow", None) for spec in shadows]
    if canary is not None:
        spec, sep, weight = canary.rpartition("@")
        if not sep or not spec:
            raise ConfigError(f"--canary must be PATH:TYPE@WEIGHT (WEIGHT 0..1), got {canary!r}")
        specs.append((spec, "canary", weight))
    if decoy:
        specs.append((champion, "decoy", None))
    messages = []
    for k, (spec, role, weight) in enumerate(specs):
        path, model_type = parse_model_spec(spec)
        descriptor = descriptor_from_path(
            path, model_type, version=f"{role}-{k + 1}-{path.stem}", data_type=data_type,
            metadata=role_metadata(role, weight),
        )  # fmt: skip
        descriptor.created_at = start - len(specs) + k  # before the first champion, in this order
        messages.append(descriptor.SerializeToString())
    return messages


def _write_lines(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _summary(console, results, dead, events, elapsed: float, out: Path) -> None:
    from rich.table import Table

    table = Table(title="Scored per model")
    table.add_column("model")
    table.add_column("version")
    table.add_column("records", justify="right")
    scored = collections.Counter((r["model_name"], r["model_version"]) for r in results)
    for (name, version), n in sorted(scored.items()):
        table.add_row(name, version, str(n))
    console.print(table)
    for event in events:
        reason = f" ({event['reason']})" if event["reason"] else ""
        console.print(f"model {event['name'] or '?'}:{event['version'] or '?'} {event['kind'].lower()}{reason}")
    reasons = collections.Counter(d["reason"] for d in dead)
    console.print(f"dead letters: {sum(reasons.values())}" + (f" {dict(reasons)}" if reasons else ""))
    console.print(f"{len(results)} results in {elapsed:.1f}s (including start-up) -> {out}")
    sys.stderr.flush()
