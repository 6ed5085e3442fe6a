"""``modelserving demo``: the whole product on one machine, live.

It starts the local Kafka broker, creates the topics, starts a serving job on
a local MiniCluster reading Kafka, publishes wine records and cycles the
reference models, and shows results (with the model that scored each one)
and model stats as they are committed. Ctrl-C, or ``--duration``, stops
everything it started.
"""

from __future__ import annotations

import argparse
import collections
import threading
import time
from pathlib import Path

from serving.errors import ServingError
from serving.logs import get_logger
from serving.ops.broker import DEFAULT_STATE, LocalBroker
from serving.paths import DEMO_DIR
from serving.records import wine

log = get_logger("demo")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``."""
    demo = subparsers.add_parser(
        "demo",
        help="Kafka + a serving job + providers + live results, all local",
        description="Start the local broker and a serving job on a MiniCluster, publish wine data and cycle the "
        "reference models, and show live results and stats. Ctrl-C stops everything.",
    )
    demo.add_argument("--job", choices=["keyed", "partitioned"], default="keyed")
    demo.add_argument(
        "--duration", type=float, default=None, metavar="SECONDS", help="stop after showing results this long"
    )
    demo.add_argument(
        "--startup-timeout", type=float, default=240.0, metavar="SECONDS", help="fail if no result by then (240)"
    )
    demo.add_argument("--rate", type=float, default=50.0, help="records/s published (default 50)")
    demo.add_argument("--swap-every", type=float, default=20.0, metavar="SECONDS", help="model cycle (default 20)")
    demo.add_argument("--parallelism", type=int, default=1)
    demo.add_argument(
        "--selection",
        choices=["arrival", "event-time"],
        default="arrival",
        help="which model scores a record: the one serving when it arrives (default, lowest latency) or by its ts",
    )
    demo.add_argument("--port", type=int, default=9092, help="broker port, or a free one if taken (0: any)")
    demo.add_argument("--state-dir", type=Path, default=DEFAULT_STATE, help="broker state directory")
    demo.add_argument("--work-dir", type=Path, default=DEMO_DIR, help="job logs and checkpoints")
    demo.add_argument("--keep-broker", action="store_true", help="leave the broker running at the end")
    demo.set_defaults(handler=run_demo)


class DemoError(ServingError):
    """The demo could not run (the job died, say)."""

    reason = "demo failed"


#: Live output: a short Python bundle, boundary batch and network buffer wait (BENCHMARKS.md, issue 16).
LOW_LATENCY = ("--bundle-time-ms", "20", "--boundary-batch-ms", "10", "--buffer-timeout-ms", "10")


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo until ``--duration`` or Ctrl-C; always clean up what it started."""
    from rich.console import Console

    from serving.kafka.clients import ensure_topics
    from serving.kafka.providers.data import publish_data
    from serving.kafka.providers.models import cycle_models
    from serving.kafka.settings import KafkaSettings
    from serving.ops.jobprocess import LocalJob

    console = Console(stderr=True)
    broker = LocalBroker(state_dir=args.state_dir)
    started_broker = not broker.status().running
    with console.status("starting Kafka (KRaft, loopback) ..."):
        status = broker.start(port=args.port, tie_to_parent=started_broker and not args.keep_broker)
    console.print(f"[green]✓[/] {status.line()}")
    stop = threading.Event()
    job = None
    threads: list[threading.Thread] = []
    try:
        settings = KafkaSettings.load(
            bootstrap_servers=status.bootstrap, group_id="demo", transactional_id_prefix="demo"
        )
        ensure_topics(settings)
        console.print(f"[green]✓[/] topics: {', '.join(settings.topics.all().values())}")
        job = LocalJob(
            settings,
            args.job,
            args.work_dir,
            parallelism=args.parallelism,
            restart_attempts=5,
            job_args=("--selection", args.selection, *LOW_LATENCY),
        )
        console.print(f"[green]✓[/] {args.job} job starting on a local MiniCluster (log: {job.log_path})")
        models_dir = wine.reference_dir() / "models"
        threads = [
            _thread(
                "models",
                lambda: cycle_models(settings, models_dir, every_seconds=args.swap_every, rounds=None, stop_event=stop),
            ),
            _thread(
                "data",
                lambda: publish_data(
                    settings, wine.reference_csv(), rate=args.rate, count=10_000_000, id_prefix="demo-", stop_event=stop
                ),
            ),
        ]
        console.print(
            f"[green]✓[/] publishing {args.rate:g} records/s and a new model every {args.swap_every:g}s; "
            "results appear once their checkpoint commits (Ctrl-C to stop)"
        )
        shown = _live(console, settings, job, args.duration, args.startup_timeout, stop)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=15)
        if job is not None:
            with console.status("stopping the job ..."):
                job.stop()
        if started_broker and not args.keep_broker:
            with console.status("stopping Kafka ..."):
                broker.stop()
    console.print(f"demo finished: {shown} results shown")
    return 0


def _thread(name: str, target) -> threading.Thread:
    def run() -> None:
        try:
            target()
        except ServingError as exc:
            log.error("provider stopped", extra={"provider": name, "error": str(exc)})

    thread = threading.Thread(target=run, name=f"demo-{name}", daemon=True)
    thread.start()
    return thread


def _live(console, settings, job, duration: float | None, startup_timeout: float, stop: threading.Event) -> int:
    """Show results, model events and stats live; returns how many results were shown.

    The ``duration`` clock starts at the first result, so a slow start-up
    (JVM, Python workers, model load) does not eat the time; no result within
    ``startup_timeout`` is a :class:`DemoError`.
    """
    from rich.live import Live

    from serving.kafka.clients import consumer, poll_batches
    from serving.pb.model_event_pb2 import ModelEvent
    from serving.pb.model_stats_pb2 import ModelStats
    from serving.pb.serving_result_pb2 import ServingResult

    topics = settings.topics
    reader = consumer(settings, group_id=f"demo-view-{int(time.time())}", from_beginning=False)
    reader.subscribe([topics.results, topics.stats, topics.model_events])
    recent: collections.deque = collections.deque(maxlen=12)
    per_model: collections.Counter = collections.Counter()
    stats: dict[tuple[str, str, str], ModelStats] = {}
    events: collections.deque = collections.deque(maxlen=5)
    launched = time.monotonic()
    started: float | None = None
    total = 0
    with Live(_render(recent, per_model, stats, events, 0, 0.0), console=console, refresh_per_second=4) as live:
        # An empty batch every 0.25 s keeps the checks and the view going while nothing arrives.
        for batch in poll_batches(reader, wait_s=0.25, stop=stop):
            elapsed = time.monotonic() - started if started is not None else 0.0
            if duration is not None and elapsed >= duration:
                break
            if started is None and time.monotonic() - launched > startup_timeout:
                raise DemoError(f"no result within {startup_timeout:.0f}s; see {job.log_path}:\n{job.tail(8)}")
            if not job.alive:
                raise DemoError(f"the serving job exited; last lines of {job.log_path}:\n{job.tail(8)}")
            for message in batch:
                if message.topic() == topics.results:
                    result = ServingResult.FromString(message.value())
                    recent.appendleft(result)
                    per_model[(result.model_name, result.model_version)] += 1
                    total += 1
                    if started is None:
                        started = time.monotonic()
                elif message.topic() == topics.stats:
                    entry = ModelStats.FromString(message.value())
                    stats[(entry.instance, entry.name, entry.version)] = entry
                else:
                    events.appendleft(ModelEvent.FromString(message.value()))
            live.update(_render(recent, per_model, stats, events, total, elapsed))
    reader.close()
    return total


def _render(recent, per_model, stats, events, total: int, elapsed: float):
    from rich.console import Group
    from rich.table import Table

    from serving.pb.model_event_pb2 import ModelEvent

    results = Table(title=f"latest results ({total} in {elapsed:.0f}s)", expand=True)
    for column in ("record", "model", "version", "score", "µs"):
        results.add_column(column, justify="right" if column in ("score", "µs") else "left")
    for r in recent:
        results.add_row(r.record_id, r.model_name, r.model_version, f"{r.score:.3f}", f"{r.duration_ns / 1000:.0f}")
    models = Table(title="per model", expand=True)
    for column in ("model", "version", "results seen", "usage (stats)", "mean µs", "min µs", "max µs"):
        models.add_column(column, justify="left" if column in ("model", "version") else "right")
    usage: collections.Counter = collections.Counter()
    for (_, name, version), s in stats.items():
        usage[(name, version)] += s.usage
    for (name, version), seen in sorted(per_model.items()):
        rows = [s for (_, n, v), s in stats.items() if (n, v) == (name, version) and s.usage]
        mean = sum(s.total_duration_ns for s in rows) / max(sum(s.usage for s in rows), 1) / 1000
        low = min((s.min_duration_ns for s in rows), default=0) / 1000
        high = max((s.max_duration_ns for s in rows), default=0) / 1000
        models.add_row(
            name, version, str(seen), str(usage[(name, version)]), f"{mean:.0f}", f"{low:.0f}", f"{high:.0f}"
        )
    lines = [
        f"model {e.name}:{e.version} {ModelEvent.Kind.Name(e.kind).lower()}" + (f" ({e.reason})" if e.reason else "")
        for e in events
    ]
    return Group(results, models, *lines)
