"""End-to-end benchmark, Kafka -> job -> Kafka: throughput and latency per configuration. Flink-free.

A configuration is a Flink job kind with a model (``passthrough``, ``keyed-tf``,
``keyed-pmml``, ``partitioned-tf``, ``partitioned-pmml``), or a plain
single-process confluent-kafka loop with the same model (``plain-tf``,
``plain-pmml``): the program a user would write instead of a Flink job.
``keyed-sk-embedded`` and ``keyed-sk-remote`` score one scikit-learn model
fitted at the start of the run (:mod:`serving.bench.sklearn_model`): its
ONNX export embedded in the job, and its joblib served by MLServer
(:mod:`serving.bench.mlserver`, running only during the remote
configuration) and called over the Open Inference Protocol.

Each configuration runs on topics of its own:

1. create fresh topics; the results topic stamps broker append time
   (``message.timestamp.type=LogAppendTime``);
2. publish the model (``created_at`` before every record's ``ts``), then pre-load
   N records on the data topic;
3. start the job (``python -m flink_jobs.main --local``) or the plain loop
   (``python -m serving.bench.plain``) as a child process group;
4. read the results topic (``read_committed``) until N results arrived.
   **Throughput** = results per second between the first and the last result's
   broker append time, so job start-up is excluded;
5. in the same running job publish M more records, paced, each stamped with its
   send time. **Latency** = result append time - record ``ts``;
6. check that exactly the N + M record ids came back, once each; stop the
   child (its whole process group) and delete the topics.

Exactly once: a Flink job writes results in Kafka transactions committed on
checkpoints, so a ``read_committed`` reader sees them only after the commit.
Append time is when the sink wrote a result into the log, before the commit,
so the latency excludes the commit wait; the "seen" latency (when this
reader received the result) includes it. The plain loop does not use
transactions (at-least-once), so its results are visible at once.
"""

from __future__ import annotations

import itertools
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from serving.bench.challengers import comparison_problems, count_comparisons
from serving.bench.configs import BENCH_VERSION, SWAP_VERSION, BenchConfig, BenchPlan
from serving.bench.measures import check_ids, latency_summary, steady_throughput
from serving.bench.publishing import publish_model
from serving.bench.reader import Arrival, ResultReader
from serving.bench.records import RecordSource
from serving.bench.report import BenchResult, format_measure
from serving.bench.sklearn_model import SkModel, train_sk_model
from serving.clock import now_ms
from serving.kafka.clients import (
    create_topics,
    delete_topics,
    flush_or_raise,
    produce_with_backpressure,
    producer,
)
from serving.kafka.settings import KafkaSettings, Topics
from serving.logs import get_logger
from serving.ops.jobprocess import LocalJob, ProcessGroup, kafka_env

log = get_logger("bench")


#: progress(phase label, done, total)
Progress = Callable[[str, int, int], None]


def bench_topics(config: BenchConfig, suffix: str) -> Topics:
    """Fresh topic names for one run of ``config``."""
    return Topics.prefixed(f"bench-{config.name}-{suffix}")


#: Topic configuration per role for a run: the results topic stamps broker append time.
TOPIC_CONFIG = {"results": {"message.timestamp.type": "LogAppendTime"}}
#: The models topic has one partition, so its latest message is the current model.
TOPIC_PARTITIONS = {"models": 1}


def preload(
    settings: KafkaSettings, source: RecordSource, count: int, not_before_ms: int, prefix: str = "t"
) -> list[str]:
    """Send ``count`` records (the wine rows, cycled) stamped now but after ``not_before_ms``; returns the ids."""
    while now_ms() <= not_before_ms:
        time.sleep(0.002)
    return _send_records(source, count, prefix, producer(settings))


def send_paced(
    settings: KafkaSettings,
    source: RecordSource,
    count: int,
    rate: float,
    progress: Callable[[int], None],
    prefix: str = "l",
    halfway: Callable[[], None] | None = None,
) -> list[str]:
    """Send ``count`` records at ``rate`` per second, each stamped with its own send time; returns the ids.

    ``halfway`` is called once, after half of the records were sent (the swap).
    """
    # linger 0: each paced record leaves at once, so its latency is not spent in the producer.
    ids = _send_records(source, count, prefix, producer(settings, **{"linger.ms": 0}), rate, progress, halfway)
    progress(count)
    return ids


def _send_records(
    source: RecordSource,
    count: int,
    prefix: str,
    sink,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
    halfway: Callable[[], None] | None = None,
) -> list[str]:
    """Produce ``count`` records of ``source`` with ``sink``, unpaced when ``rate`` is None; flush; return the ids."""
    ids = []
    started = time.monotonic()
    for i in range(count):
        if rate is not None:
            # Pace against the start, so sleep overshoots do not add up.
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        record_id = f"{prefix}{i}"
        ts = now_ms()
        produce_with_backpressure(sink, source.topic, source.encode(record_id, i, ts), timestamp=ts)
        ids.append(record_id)
        if progress is not None and i % 50 == 0:
            progress(i)
        if halfway is not None and i == count // 2:
            halfway()
    flush_or_raise(sink, source.topic)
    return ids


def start_child(
    config: BenchConfig, plan: BenchPlan, settings: KafkaSettings, work_dir: Path, job_args: Sequence[str] = ()
) -> ProcessGroup:
    """Start the job (or the plain worker) for ``config``; its log is ``work_dir/<name>.log``."""
    if config.runner == "plain":
        args = [
            sys.executable,
            "-m",
            "serving.bench.plain",
            "--bootstrap-servers",
            settings.bootstrap_servers,
            "--batch",
            str(config.plain_batch),
            *(["--transactional"] if config.transactional else []),
        ]
        return ProcessGroup(args, kafka_env(settings), work_dir / f"{config.name}.log")
    return LocalJob(
        settings,
        str(config.job),
        work_dir,
        parallelism=plan.parallelism,
        checkpoint_interval_ms=plan.checkpoint_interval_ms,
        idle_flush_ms=plan.idle_flush_ms,
        name=config.name,
        job_args=(*plan.job_args, *job_args),
    )


def _wait(
    reader: ResultReader,
    child: ProcessGroup,
    target: int,
    timeout_s: float,
    on_progress: Callable[[int], None],
) -> str | None:
    """Wait until ``target`` distinct results arrived; a problem sentence on timeout or child exit."""
    deadline = time.monotonic() + timeout_s
    while True:
        done = reader.distinct()
        on_progress(done)
        if done >= target:
            return None
        if reader.error is not None:
            return f"reading results failed: {reader.error}"
        code = child.exited()
        if code is not None:
            return f"the job exited with code {code} after {done} results: {child.tail(1)[:300]}"
        if time.monotonic() > deadline:
            return f"timed out after {timeout_s:.0f}s with {done} of {target} results"
        time.sleep(0.25)


def run_config(
    base: KafkaSettings,
    config: BenchConfig,
    plan: BenchPlan,
    work_dir: Path,
    progress: Progress,
    sk: SkModel | None = None,
    server_url: str | None = None,
) -> BenchResult:
    """Measure one configuration end to end (see the module docstring); never raises for a failed check.

    ``sk`` and ``server_url``: the trained model (and the MLServer serving it) a ``trained`` configuration publishes.

    Problems (lost or duplicated ids, a wrong model, a timeout, a crashed job)
    are recorded in ``BenchResult.problems``.

    Raises:
        ServingError: the topics could not be created or the inputs not published
            (a :class:`BenchError` or an error of the Kafka layer).
    """
    suffix = uuid.uuid4().hex[:8]
    settings = base.model_copy(
        update={
            "topics": bench_topics(config, suffix),
            "group_id": f"bench-{config.name}-{suffix}",
            "transactional_id_prefix": f"bench-{config.name}-{suffix}",
            "data_topic_prefix": f"bench-{config.name}-{suffix}-data.",
        }
    )
    source = RecordSource(settings, config.data_format)
    parallelism = plan.parallelism if config.runner == "flink" else 1
    result = BenchResult(config, parallelism, plan.records, plan.latency_records)
    result.job_args = plan.job_args if config.runner == "flink" else ()
    swapped_at: list[int] = []
    result.log_path = work_dir / f"{config.name}.log"
    extra = {"config": config.name, "records": plan.records, "parallelism": parallelism}
    log.info("bench configuration starting", extra={**extra, "topics": settings.topics.data})
    child: ProcessGroup | None = None
    reader = ResultReader(settings, settings.topics.results)
    try:
        create_topics(
            settings,
            settings.topics,
            max(plan.parallelism, 1),
            partitions_by_role=TOPIC_PARTITIONS,
            config_by_role=TOPIC_CONFIG,
        )
        if source.topic != settings.topics.data:
            create_topics(settings, {"records": source.topic}, max(plan.parallelism, 1))
        model_at = now_ms()
        if config.model_type is not None:
            model_at = publish_model(settings, config, data_type=source.data_type, sk=sk, server_url=server_url)
        if config.challenger_role is not None:
            version = f"{BENCH_VERSION}-{config.challenger_role}"
            model_at = publish_model(
                settings, config, version, source.data_type, metadata=config.challenger_metadata
            )  # the champion came first: this one joins its lineup as the challenger
        progress(f"{config.name}: pre-loading", 0, plan.records)
        sent = preload(settings, source, plan.records, model_at)
        progress(f"{config.name}: pre-loading", len(sent), plan.records)
        reader.start()
        started_ms = now_ms()
        child = start_child(config, plan, settings, work_dir, source.job_args(work_dir))
        problem = _wait(
            reader,
            child,
            plan.records,
            plan.timeout_s,
            lambda n: progress(f"{config.name}: throughput", n, plan.records),
        )
        arrivals, _ = reader.snapshot()
        if arrivals:
            result.first_result_s = (min(a.seen_ms for a in arrivals.values()) - started_ms) / 1000
            result.last_result_s = (max(a.seen_ms for a in arrivals.values()) - started_ms) / 1000
        if problem is None and plan.latency_records:
            total = plan.records + plan.latency_records
            swap = None
            if plan.swap and config.runner == "flink" and config.model_type is not None:
                swap = lambda: swapped_at.append(  # noqa: E731
                    publish_model(settings, config, SWAP_VERSION, source.data_type, sk, server_url)
                )
            sent += send_paced(
                settings,
                source,
                plan.latency_records,
                plan.latency_rate,
                lambda n: progress(f"{config.name}: latency (sending)", n, plan.latency_records),
                halfway=swap,
            )
            problem = _wait(
                reader,
                child,
                total,
                plan.timeout_s,
                lambda n: progress(f"{config.name}: latency", n - plan.records, plan.latency_records),
            )
        if problem is None:
            # A duplicate would arrive with a later commit: give it two checkpoints' time.
            time.sleep(max(2.0, 2 * plan.checkpoint_interval_ms / 1000))
        if problem is not None:
            result.problems.append(problem)
        elif config.challenger_role is not None:
            problems, note = comparison_problems(config, sent, count_comparisons(settings))
            result.problems += problems
            result.notes.append(note)
    finally:
        reader.stop()
        if child is not None:
            child.stop()
        topics = {*settings.topics.all().values(), source.topic}
        for topic, error in delete_topics(settings, topics).items():
            # The run's figures stand without the clean-up.
            log.warning("topic not deleted", extra={"topic": topic, "error": error})
    _measure(result, reader, sent, plan, swapped_at[0] if swapped_at else None)
    level = log.info if result.ok else log.error
    level(
        "bench configuration done",
        extra={
            **extra,
            "throughput": format_measure(result.throughput, "{:.0f}"),
            "problems": "; ".join(result.problems) or "-",
        },
    )
    return result


def _measure(
    result: BenchResult, reader: ResultReader, sent: list[str], plan: BenchPlan, swapped_at: int | None
) -> None:
    arrivals, counts = reader.snapshot()
    result.received = len(arrivals)
    check = check_ids(sent, counts)
    result.exactly_once = check.ok
    result.problems += check.problems()
    wrong_model = sum(1 for a in arrivals.values() if a.model_name != result.config.expected_model_name)
    if wrong_model:
        result.problems.append(f"{wrong_model} results name a model other than {result.config.expected_model_name!r}")
    if reader.not_append_time:
        result.problems.append(f"{reader.not_append_time} results carry no broker append time")
    if reader.undecodable:
        result.problems.append(f"{reader.undecodable} results are not ServingResult messages")
    bulk = sent[: plan.records]
    result.throughput = steady_throughput(arrivals[i].append_ms for i in bulk if i in arrivals)
    paced = [arrivals[i] for i in sent[plan.records :] if i in arrivals]
    result.p50_ms, result.p99_ms = latency_summary([a.append_ms - a.record_ts for a in paced])
    result.seen_p50_ms, result.seen_p99_ms = latency_summary([a.seen_ms - a.record_ts for a in paced])
    if swapped_at is not None:
        measure_swap(result, paced, swapped_at)
    if paced and result.throughput is not None and result.throughput < plan.latency_rate:
        result.notes.append(
            f"paced at {plan.latency_rate:g}/s, above its throughput of {result.throughput:,.0f}/s: "
            "the latency includes a growing queue"
        )


def measure_swap(result: BenchResult, paced: Sequence[Arrival], swapped_at: int) -> None:
    """How soon the swapped-in version served, and the longest pause in results around the swap.

    * ``swap_effect_ms``: append time of the first result by the new version - its ``created_at``;
    * ``swap_gap_ms``: the longest gap between consecutive result append times within 1 s either side;
    * ``usual_gap_ms``: the same outside that window, for comparison (results leave in flushes).
    """
    new = [a.append_ms for a in paced if a.model_version == SWAP_VERSION]
    if not new:
        result.problems.append(f"no result came from the swapped-in version {SWAP_VERSION!r}")
        return
    result.swap_effect_ms = min(new) - swapped_at
    stamps = sorted(a.append_ms for a in paced)
    gaps = [(b, b - a) for a, b in itertools.pairwise(stamps)]
    near = [g for at, g in gaps if abs(at - swapped_at) <= 1_000]
    far = [g for at, g in gaps if abs(at - swapped_at) > 1_000]
    result.swap_gap_ms = max(near, default=None)
    result.usual_gap_ms = max(far, default=None)


def run_bench(
    settings: KafkaSettings, configs: Sequence[BenchConfig], plan: BenchPlan, progress: Progress
) -> list[BenchResult]:
    """Run every configuration in turn (one at a time: the machine has two cores); returns their results.

    Child logs go to a temporary directory that is kept when a configuration
    fails (its path is in ``BenchResult.log_path``) and removed otherwise.
    The ``trained`` configurations share one model, fitted once before the
    first of them; MLServer runs only while a remote configuration does.

    Raises:
        BenchError: the trained model could not be made (MLServer's venv missing, training failed),
            or MLServer did not start.
    """
    from serving.bench.mlserver import running_mlserver

    plan.validate()
    work_dir = Path(tempfile.mkdtemp(prefix="modelserving-bench-"))
    sk = None
    if any(c.trained for c in configs):
        progress("training the scikit-learn model", 0, 1)
        try:
            sk = train_sk_model(work_dir)
        except BaseException:
            shutil.rmtree(work_dir, ignore_errors=True)
            raise
        progress("training the scikit-learn model", 1, 1)
    results = []
    for config in configs:
        if config.trained and config.model_type == "oip" and sk is not None:
            with running_mlserver(sk.repository) as url:
                results.append(run_config(settings, config, plan, work_dir, progress, sk, url))
        else:
            results.append(run_config(settings, config, plan, work_dir, progress, sk))
    if all(r.ok for r in results):
        for r in results:
            r.log_path = None
        shutil.rmtree(work_dir, ignore_errors=True)  # logs, Flink logs, checkpoints
    return results
