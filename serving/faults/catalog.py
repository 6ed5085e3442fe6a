"""Every fault scenario by name: what it injects, how often, and what the run expects of it.

``modelserving faults list`` prints this catalogue; a new scenario is one
inject function plus one entry here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from serving.faults.generator import MODEL_KINDS
from serving.faults.mixes import Nemesis, burst_then_kill_taskmanager
from serving.faults.restores import kill_jobmanager, kill_jobmanager_twice, restore_after_transaction_timeout
from serving.faults.scenarios import (
    kill_broker,
    kill_python_worker,
    kill_taskmanager,
    pause_broker,
    rescale,
    stall_python_worker,
    submit_same_prefix,
)
from serving.faults.stage import Stage


@dataclass(frozen=True)
class Scenario:
    """A named fault, how often it fires, and what the run expects of it.

    Attributes:
        restarts_per_fault: the job restarts each fault must cause (C8);
            None when the fault may or may not restart the job (the broker
            faults: clients retry through a short outage).
        poison_share: share of garbage records, with corrupt models (the ``poison`` scenario).
        checkpoint_interval_ms: the job's checkpoint interval when the scenario needs its own.
        transaction_timeout_ms: the job's Kafka ``transaction.timeout.ms`` when the scenario needs its own.
        must_fail: a negative control's checks that must fail (the run passes when each does).
        model_kinds: the models published in turn (see :mod:`serving.faults.generator`).
        duration_s: how long the run lasts at least, unless ``--duration`` says otherwise.
    """

    name: str
    summary: str
    inject: Callable[[Stage], str]
    count: int
    restarts_per_fault: int | None = 1
    poison_share: float = 0.0
    checkpoint_interval_ms: int | None = None
    transaction_timeout_ms: int | None = None
    must_fail: tuple[str, ...] = ()
    model_kinds: tuple[str, ...] = MODEL_KINDS
    duration_s: float | None = None


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("tm-kill", "TaskManager SIGKILL, a spare started first", kill_taskmanager, 3),
        Scenario("worker-kill", "Python workers SIGKILL, then a check for orphans", kill_python_worker, 3),
        Scenario("worker-stall", "Python worker SIGSTOP for 90 s", stall_python_worker, 1, None),
        Scenario("broker-kill", "broker SIGKILL, down 30 s", kill_broker, 2, None),
        Scenario("broker-pause", "broker SIGSTOP 20 s", pause_broker, 3, None),
        Scenario("jm-kill", "JobManager SIGKILL (no HA), cluster restarted, checkpoint restored", kill_jobmanager, 2),
        Scenario(
            "jm-kill-twice",
            "the same checkpoint restored twice: the first restored job crashed before it checkpoints",
            kill_jobmanager_twice,
            1,
            2,
        ),
        Scenario("rescale", "stop with a savepoint, resume at parallelism 1, then 2 again", rescale, 2, 0),
        Scenario(
            "prefix-clash",
            "negative control: a second job with the same transactional-id prefix, which the guard refuses",
            submit_same_prefix,
            1,
            0,
        ),
        Scenario(
            "backpressure",
            "5x burst over a slow model, a TaskManager killed under back-pressure",
            burst_then_kill_taskmanager,
            1,
            model_kinds=("slow",),
        ),
        Scenario(
            "nemesis",
            "a seeded mix of TaskManager, worker, JobManager and broker faults for 8 minutes",
            Nemesis(seed=19),
            6,
            None,
            duration_s=480.0,
        ),
        Scenario(
            "poison",
            "10 % seeded garbage records and corrupt models, with one TaskManager kill",
            kill_taskmanager,
            1,
            poison_share=0.1,
        ),
        Scenario(
            "txn-timeout",
            "negative control: 30 s transaction timeout, crash after a savepoint, restore it 60 s later (C1, C7 fail)",
            restore_after_transaction_timeout,
            1,
            checkpoint_interval_ms=20_000,
            transaction_timeout_ms=30_000,
            must_fail=("c1_no_loss", "c7_logs_clean"),
        ),
    )
}
