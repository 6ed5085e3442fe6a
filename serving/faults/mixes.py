"""Faults made of others: a TaskManager killed under back-pressure, and the seeded nemesis.

``backpressure`` raises the input to 5x its rate while every model version
is the deep :mod:`serving.faults.slow_model`, waits until Flink reports the
job back-pressured, then kills a TaskManager in the middle of it.
``nemesis`` fires a seeded sequence of the single faults, so a failing run
can be replayed with the same seed.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence

from serving.faults.restores import kill_jobmanager
from serving.faults.scenarios import kill_broker, kill_python_worker, kill_taskmanager, pause_broker
from serving.faults.stage import Stage
from serving.logs import get_logger
from serving.ops.cluster.errors import ClusterError

log = get_logger("faults")

#: The burst, as a multiple of the normal rate, and how long it goes on after the kill.
BURST, BURST_AFTER_KILL_S = 5.0, 20.0


def burst_then_kill_taskmanager(stage: Stage, timeout_s: float = 90.0) -> str:
    """Raise the input to :data:`BURST` times its rate; once the job is back-pressured, kill a TaskManager.

    Returns right after the kill, so the runner measures the recovery from it;
    the burst goes on :data:`BURST_AFTER_KILL_S` more (a timer puts the rate
    back), and the backlog it leaves is what "caught up" measures.
    """
    generator = stage.generator
    if generator is None:
        raise RuntimeError("the backpressure scenario needs the generator")
    normal = generator.rate
    generator.rate = normal * BURST
    try:
        pressured = wait_backpressure(stage, timeout_s)
        what = kill_taskmanager(stage)
    except BaseException:
        generator.rate = normal
        raise
    calm = threading.Timer(BURST_AFTER_KILL_S, lambda: setattr(generator, "rate", normal))
    calm.daemon = True
    calm.start()
    seen = f"back-pressured at {', '.join(pressured)}" if pressured else f"no back-pressure seen in {timeout_s:.0f}s"
    return f"{BURST:.0f}x burst ({normal * BURST:.0f} records/s), {seen}; {what}; burst on {BURST_AFTER_KILL_S:.0f}s"


def wait_backpressure(stage: Stage, timeout_s: float) -> list[str]:
    """Names of the vertices Flink reports ``high`` back-pressure for, polled until some are or ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            levels = stage.rest.backpressure(stage.job_id)
        except ClusterError:
            levels = {}
        high = [name[:40] for name, level in levels.items() if level == "high"]
        if high:
            return high
        time.sleep(2.0)
    return []


class Nemesis:
    """A seeded mix of single faults: each call injects the next one the seed chooses.

    A JobManager kill replaces the job (a restore); the runner follows it.
    """

    FAULTS: dict[str, Callable[[Stage], str]] = {
        "tm-kill": kill_taskmanager,
        "worker-kill": kill_python_worker,
        "broker-kill": kill_broker,
        "broker-pause": pause_broker,
        "jm-kill": kill_jobmanager,
    }

    def __init__(self, seed: int = 19, faults: Sequence[str] | None = None) -> None:
        self.random = random.Random(seed)
        self.names = list(faults or self.FAULTS)

    def __call__(self, stage: Stage) -> str:
        """Inject the next fault of the seeded sequence; returns what it did, named."""
        name = self.random.choice(self.names)
        log.info("nemesis fault", extra={"fault": name})
        return f"{name}: {self.FAULTS[name](stage)}"
