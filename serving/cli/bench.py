"""``modelserving bench``: the end-to-end benchmark, Kafka -> job -> Kafka (see :mod:`serving.bench.run`)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
from pathlib import Path

from serving.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``bench``."""
    from serving.bench.configs import CONFIGS

    bench = subparsers.add_parser(
        "bench",
        help="end-to-end throughput and latency, Kafka -> job -> Kafka, per configuration",
        description="Benchmark each configuration on fresh topics: pre-load N records and measure throughput "
        "by broker append time over the middle 80 percent of them (start-up and warm-up excluded), "
        "then send M paced records into the running job and "
        "measure latency (result append time - record ts). Configurations: " + ", ".join(CONFIGS) + ". "
        "A benchmark, not a test: it takes minutes and wants an otherwise idle machine.",
    )
    bench.add_argument("--only", default=None, metavar="NAME[,NAME]", help="configurations to run (default: all)")
    bench.add_argument("--records", type=int, default=20_000, metavar="N", help="pre-loaded records (20000)")
    bench.add_argument(
        "--latency-records", type=int, default=2_000, metavar="M", help="paced records for latency (2000; 0: none)"
    )
    bench.add_argument("--latency-rate", type=float, default=500.0, metavar="R", help="records/s when paced (500)")
    bench.add_argument("--parallelism", type=int, default=1, metavar="P", help="Flink parallelism (1)")
    bench.add_argument("--timeout", type=float, default=600.0, metavar="S", help="limit per phase, seconds (600)")
    bench.add_argument(
        "--bootstrap-servers",
        default=None,
        metavar="HOST:PORT",
        help="Kafka to use (default: MODELSERVING_KAFKA_BOOTSTRAP_SERVERS, else the local broker, started if "
        "needed and stopped again afterwards)",
    )
    bench.add_argument(
        "--job-args",
        default="",
        metavar="FLAGS",
        help="more flink_jobs.main flags for every Flink configuration, e.g. '--batch-size 500 --batch-wait-ms 20'",
    )
    bench.add_argument(
        "--sweep",
        default=None,
        metavar="B:T[,B:T]",
        help="run the Flink configurations once per batch size B and batch wait T (ms), e.g. 100:5,1000:10,5000:50",
    )
    bench.add_argument(
        "--swap",
        action="store_true",
        help="publish a new model version halfway through the paced records; measure its effect and any pause",
    )
    bench.add_argument("--write-markdown", action="store_true", help="write the results section into --out")
    bench.add_argument(
        "--json", type=Path, default=None, metavar="FILE",
        help="also write one JSON object per configuration: name, parallelism, records/s, p50/p99 ms, exactly once",
    )  # fmt: skip
    bench.add_argument(
        "--out", type=Path, default=Path("BENCHMARKS.md"), metavar="FILE", help="Markdown file (BENCHMARKS.md)"
    )
    bench.set_defaults(handler=run_bench_command)


def run_bench_command(args: argparse.Namespace) -> int:
    """Run the chosen configurations with live progress; print the table; exit 1 if any check failed."""
    from rich.console import Console

    from serving.bench.configs import PAIR_KINDS, BenchError, BenchPlan, parse_only
    from serving.bench.measures import parse_sweep
    from serving.bench.report import machine_info, markdown_section, pair_ratios, write_markdown
    from serving.bench.run import run_bench
    from serving.kafka.clients import check_reachable
    from serving.kafka.settings import KafkaSettings
    from serving.ops.broker import LocalBroker

    configs = parse_only(args.only)
    plan = BenchPlan(
        records=args.records,
        latency_records=args.latency_records,
        latency_rate=args.latency_rate,
        parallelism=args.parallelism,
        timeout_s=args.timeout,
        job_args=tuple(shlex.split(args.job_args)),
        swap=args.swap,
    )
    plan.validate()
    plans = [plan]
    if args.sweep:
        plans = [
            dataclasses.replace(plan, job_args=(*plan.job_args, "--batch-size", str(b), "--batch-wait-ms", str(t)))
            for b, t in parse_sweep(args.sweep)
        ]
    if args.json is not None and args.json.is_dir():
        raise ConfigError(f"--json {args.json} is a directory")
    if args.write_markdown and args.out.is_dir():
        raise ConfigError(f"--out {args.out} is a directory")
    console = Console(stderr=True)
    settings = KafkaSettings.load(bootstrap_servers=args.bootstrap_servers)
    broker = None
    if "bootstrap_servers" not in settings.model_fields_set:
        local = LocalBroker()
        if not local.status().running:
            console.print("starting the local Kafka broker (stopped again at the end) ...")
            broker = local
        status = local.start(tie_to_parent=broker is not None)
        settings = KafkaSettings.load(bootstrap_servers=status.bootstrap)
    try:
        check_reachable(settings)
        machine = machine_info() if args.write_markdown else {}
        console.print(
            f"[bold]modelserving bench[/]: {', '.join(c.name for c in configs)}; N={plan.records:,}, "
            f"M={plan.latency_records:,} at {plan.latency_rate:g}/s, parallelism {plan.parallelism}, "
            f"Kafka {settings.bootstrap_servers}"
        )
        with _progress(console) as progress:
            results = []
            for each in plans:
                # The plain loops have no B and T: they run once, with the first plan.
                chosen = configs if each is plans[0] else [c for c in configs if c.runner == "flink"]
                results += run_bench(settings, chosen, each, progress)
    finally:
        if broker is not None:
            broker.stop()
    out = Console()
    if not out.is_terminal:
        out = Console(width=160)  # a file or pipe: no wrapping of the 11 columns
    out.print(_table(results))
    for each_ratio in pair_ratios(results):
        out.print(f"{PAIR_KINDS[each_ratio.kind]}: {each_ratio.line()}", highlight=False)
    console.print(
        "Latency p50/p99 = result append time - record ts. The Flink jobs commit results with checkpoints "
        f"(exactly once, every {plan.checkpoint_interval_ms} ms): append time excludes that commit wait; "
        "'seen' (when a read_committed consumer got the result) includes it. The plain loops are at-least-once, "
        "except plain-tx (one transaction per poll)."
    )
    if args.json is not None:
        args.json.write_text(json.dumps([r.summary() for r in results], indent=2) + "\n")
        console.print(f"results written to {args.json}")
    if args.write_markdown:
        load = "load average (1/5/15 min)"
        machine[load] = f"{machine[load]} at start, {machine_info()[load]} at end"
        command = "modelserving " + shlex.join(sys.argv[1:])
        write_markdown(args.out, markdown_section(results, plan, command, machine))
        console.print(f"results section written to {args.out}")
    for r in results:
        for note in r.notes:
            console.print(f"[yellow]note {r.config.name}[/]: {note}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        console.print(f"[bold red]FAILED {r.config.name}[/]: {'; '.join(r.problems)} (log: {r.log_path})")
    if failed:
        raise BenchError(f"{len(failed)} of {len(results)} configurations failed their checks (see above)")
    return 0


def _table(results):
    from rich.table import Table

    from serving.bench.report import COLUMNS

    table = Table(title="End to end, Kafka -> job -> Kafka")
    for column in COLUMNS:
        left = column in ("configuration", "model", "ids")
        table.add_column(column, justify="left" if left else "right", overflow="fold")
    for result in results:
        row = result.row()
        style = None if result.ok else "bold red"
        table.add_row(*(row[c] for c in COLUMNS), style=style)
    return table


class _progress:
    """A rich progress display; calling it updates (or adds) the row of a phase."""

    def __init__(self, console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            console=console,
        )
        self._tasks: dict[str, int] = {}

    def __enter__(self):
        self._bar.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._bar.__exit__(*exc)

    def __call__(self, label: str, done: int, total: int) -> None:
        if label not in self._tasks:
            self._tasks[label] = self._bar.add_task(label, total=total, rate="")
        task_id = self._tasks[label]
        self._bar.update(task_id, completed=done, total=total)
        task = next(t for t in self._bar.tasks if t.id == task_id)
        self._bar.update(task_id, rate=f"{task.speed:,.0f}/s" if task.speed else "")
