"""One fault scenario, start to verdict, on a broker and a standalone cluster of its own.

The run, as issue 19 sets it:

1. A broker and a standalone Flink cluster (a JobManager, one TaskManager
   with 2 slots) start under the run's work directory, on free ports; fresh
   topics and a transactional-id prefix of the run's own.
2. The keyed job runs at parallelism 2 with a 5 s checkpoint interval
   (``flink run``, as a user submits it).
3. The generator sends ~200 records/s (``acks=all``, idempotent; its
   delivery reports are the ground truth) and a new model version every 30 s.
4. Each fault fires only after a new checkpoint completed; the run measures
   when the job runs again, its next completed checkpoint, and when the
   committed output caught up with what was acknowledged before the fault.
5. The end: stop the input, wait until the committed output caught up with
   it (a backlog drains), wait for 2 more completed checkpoints, stop the
   job with a savepoint (``flink stop``), then judge the evidence
   (:mod:`serving.faults.oracle`). Everything started is stopped, also on
   Ctrl-C or SIGTERM; the work directory stays for inspection.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from serving.faults.catalog import Scenario
from serving.faults.generator import Generator, GroundTruth
from serving.faults.progress import OutputWatcher, completed_checkpoints, wait_all_running, wait_new_checkpoint
from serving.faults.scenarios import kill_all, orphan_workers
from serving.faults.stage import Stage
from serving.kafka.clients import create_topics
from serving.kafka.settings import KafkaSettings, Topics
from serving.logs import get_logger
from serving.ops.broker import LocalBroker, free_port
from serving.ops.cluster.config import ClusterOptions
from serving.ops.cluster.local import LocalCluster
from serving.ops.cluster.rest import FlinkRest
from serving.ops.cluster.submit import Submission, submit

log = get_logger("faults")

#: Faster failure detection than Flink's 50 s default, so a killed TaskManager is noticed in seconds.
CLUSTER_FLINK = {"heartbeat.interval": "2s", "heartbeat.timeout": "10s"}


@dataclass
class RunPlan:
    """How a scenario runs: rate, model cadence, checkpointing, timings."""

    parallelism: int = 2
    checkpoint_interval_ms: int = 5_000
    rate: float = 200.0
    model_every_s: float = 30.0
    warm_up_s: float = 10.0
    between_faults_s: float = 10.0
    recovery_timeout_s: float = 180.0
    broker_down_s: float = 30.0
    broker_pause_s: float = 20.0
    worker_stall_s: float = 90.0
    restore_after_s: float = 60.0
    #: At the end, how long the committed output may take to catch up with the input before the final checkpoints.
    drain_timeout_s: float = 600.0
    duration_s: float | None = None


@dataclass
class FaultRecord:
    """One injected fault and the recovery it needed (epoch seconds; None: not seen in time)."""

    what: str
    injected_at: float
    acked_before: int
    running_at: float | None = None
    checkpoint_at: float | None = None
    caught_up_at: float | None = None

    def durations(self) -> dict[str, float | None]:
        """Seconds from the fault to RUNNING, to the next completed checkpoint, to the output catching up."""

        def since(t: float | None) -> float | None:
            return None if t is None else round(t - self.injected_at, 1)

        return {
            "to_running_s": since(self.running_at),
            "to_checkpoint_s": since(self.checkpoint_at),
            "to_caught_up_s": since(self.caught_up_at),
        }


@dataclass
class RunRecord:
    """Everything a run leaves for the oracle."""

    scenario: str
    settings: KafkaSettings
    truth: GroundTruth
    faults: list[FaultRecord] = field(default_factory=list)
    restarts: int | None = None
    orphans: list[int] = field(default_factory=list)
    log_files: list[Path] = field(default_factory=list)
    work_dir: Path | None = None
    savepoint: str | None = None


def run_scenario(
    scenario: Scenario,
    plan: RunPlan,
    work_dir: Path,
    judge: Callable[[RunRecord, Scenario], dict],
    progress: Callable[[str], None] = print,
) -> dict:
    """Run ``scenario`` once and return ``judge``'s verdict on it; never leaves a process behind.

    ``judge`` runs while the broker still serves, so it can read the topics.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    started = time.time()
    suffix = uuid.uuid4().hex[:8]
    broker = LocalBroker(state_dir=work_dir / "kafka")
    cluster = LocalCluster(work_dir / "flink")
    generator: Generator | None = None
    watcher: OutputWatcher | None = None
    try:
        port = free_port()
        status = broker.start(port=port, tie_to_parent=True)
        progress(f"broker up at {status.bootstrap}")
        settings = _run_settings(status.bootstrap, scenario.name, suffix, scenario.transaction_timeout_ms)
        cluster_options = ClusterOptions(
            rest_port=free_port(),
            rpc_port=free_port(),
            slots=plan.parallelism,
            savepoint_dir=work_dir / "savepoints",
            flink=CLUSTER_FLINK,
        )
        cluster.start(cluster_options)
        rest = FlinkRest(cluster.rest)
        progress(f"cluster up at {cluster.rest}")
        generator = Generator(
            settings,
            rate=plan.rate,
            model_every_s=plan.model_every_s,
            poison_share=scenario.poison_share,
            model_kinds=scenario.model_kinds,
        )
        generator.publish_model()  # the job starts with a model (the model source reads from the earliest)
        submission = Submission(
            job="keyed",
            parallelism=plan.parallelism,
            kafka_env=settings.to_environment(),
            checkpoint_interval_ms=scenario.checkpoint_interval_ms or plan.checkpoint_interval_ms,
        )
        job_id = submit(submission, cluster.rest, work_dir)
        progress(f"job {job_id} running at parallelism {plan.parallelism}")
        record = RunRecord(scenario.name, settings, generator.truth, work_dir=work_dir)
        watcher = OutputWatcher(settings)
        watcher.start()
        generator.start()
        stage = Stage(
            cluster,
            rest,
            job_id,
            broker,
            port,
            work_dir,
            broker_down_s=plan.broker_down_s,
            broker_pause_s=plan.broker_pause_s,
            worker_stall_s=plan.worker_stall_s,
            submission=submission,
            settings=settings,
            cluster_options=cluster_options,
            restore_after_s=plan.restore_after_s,
            generator=generator,
        )
        time.sleep(plan.warm_up_s)
        checkpoints, _ = wait_new_checkpoint(rest, job_id, 0, plan.recovery_timeout_s)
        for n in range(scenario.count):
            checkpoints, at = wait_new_checkpoint(rest, job_id, checkpoints, plan.recovery_timeout_s)
            if at is None:
                raise RuntimeError("no new checkpoint completed before the fault: the job is not healthy")
            acked = len(generator.truth.acked_ids)
            injected = time.time()
            what = scenario.inject(stage)
            # The fault may replace the job (rescale, a restore) and the REST client (a restarted cluster).
            replaced, rest = stage.job_id != job_id, stage.rest
            job_id = stage.job_id
            fault = FaultRecord(what, injected, acked)
            record.faults.append(fault)
            progress(f"fault {n + 1}/{scenario.count}: {what}")
            expect_restart = bool(scenario.restarts_per_fault) and not replaced
            _measure_recovery(fault, rest, job_id, watcher, plan, expect_restart=expect_restart)
            checkpoints = completed_checkpoints(rest, job_id)[0]
            progress(f"  recovered: {fault.durations()}")
            time.sleep(plan.between_faults_s)
        duration = plan.duration_s or scenario.duration_s
        if duration:
            time.sleep(max(0.0, duration - (time.time() - record.faults[0].injected_at)))
        generator.stop()
        if generator.error is not None:
            raise RuntimeError(f"the generator failed: {generator.error}")
        acked = len(generator.truth.acked_ids)
        progress(f"input stopped: {acked} records acknowledged")
        # A backlog (a burst over a slow model) must drain before the end: the job stops without draining.
        drained = watcher.reached(acked, plan.drain_timeout_s)
        late = f"output not caught up in {plan.drain_timeout_s:.0f}s"
        progress("output caught up with the input" if drained else late)
        for _ in range(2):
            checkpoints, _ = wait_new_checkpoint(rest, job_id, checkpoints, plan.recovery_timeout_s)
        # numRestarts leaves out region restarts (what a lost TaskManager causes): take the larger count.
        # A job resubmitted after a crash starts counting again: its restores count as restarts.
        record.restarts = max(rest.restarts(job_id), rest.failures(job_id)) + stage.restores
        record.savepoint = rest.stop_with_savepoint(job_id, str(work_dir / "savepoints"))
        progress(f"job stopped with savepoint {record.savepoint}")
        record.orphans = orphan_workers(started)
        record.log_files = sorted(cluster.log_dir.glob("*.log*"))
        progress("judging: reading every output topic with read_committed and read_uncommitted")
        return judge(record, scenario)
    finally:
        _clean_up(generator, watcher, cluster, broker, started)


def _clean_up(generator, watcher, cluster: LocalCluster, broker: LocalBroker, started: float) -> None:
    """Stop everything the run started, each step on its own, so one failure cannot leave the rest running."""
    steps = [
        lambda: generator is not None and generator.is_alive() and generator.stop(),
        lambda: watcher is not None and watcher.stop(),
        cluster.stop,
        broker.stop,
        lambda: kill_all(orphan_workers(started)),
    ]
    for step in steps:
        try:
            step()
        except Exception as exc:
            log.warning("clean-up step failed", extra={"error": str(exc)})


def _measure_recovery(
    fault: FaultRecord, rest: FlinkRest, job_id: str, watcher: OutputWatcher, plan: RunPlan, expect_restart: bool
) -> None:
    """Fill in the recovery of ``fault``: RUNNING again, the next checkpoint, the output caught up.

    RUNNING counts only after the job left it, for a fault that restarts the
    job; the output caught up when every id acknowledged before the fault
    was committed.
    """
    fault.running_at = wait_all_running(rest, job_id, plan.recovery_timeout_s, left_first=expect_restart)
    if fault.running_at is None:
        return
    after = completed_checkpoints(rest, job_id)[0]
    _, fault.checkpoint_at = wait_new_checkpoint(rest, job_id, after, plan.recovery_timeout_s)
    fault.caught_up_at = watcher.reached(fault.acked_before, plan.recovery_timeout_s)


def _run_settings(
    bootstrap: str, scenario: str, suffix: str, transaction_timeout_ms: int | None = None
) -> KafkaSettings:
    """Kafka settings of one run: its own topics, group and transactional-id prefix."""
    base = KafkaSettings.load(bootstrap_servers=bootstrap)
    topics = Topics.prefixed(f"faults-{scenario}-{suffix}")
    update = {"topics": topics, "group_id": f"faults-{suffix}", "transactional_id_prefix": f"faults-{suffix}"}
    if transaction_timeout_ms:
        update["transaction_timeout_ms"] = transaction_timeout_ms
    settings = base.model_copy(update=update)
    create_topics(settings, topics, settings.partitions, partitions_by_role={"models": 1})
    return settings


def record_summary(record: RunRecord) -> dict:
    """The run's own facts for the JSON verdict (the oracle adds the checks)."""
    return {
        "scenario": record.scenario,
        "faults": [{"what": f.what, **f.durations()} for f in record.faults],
        "orphan_python_workers": record.orphans,
        "work_dir": str(record.work_dir),
        "savepoint": record.savepoint,
    }


def write_json(path: Path, verdict: dict) -> None:
    """Write one verdict as indented JSON."""
    path.write_text(json.dumps(verdict, indent=2) + "\n")
