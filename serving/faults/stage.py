"""What a fault acts on: the cluster, its REST API, the job, the broker, and where logs go."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serving.kafka.settings import KafkaSettings
from serving.ops.broker import LocalBroker
from serving.ops.cluster.config import ClusterOptions
from serving.ops.cluster.local import LocalCluster
from serving.ops.cluster.rest import FlinkRest
from serving.ops.cluster.submit import Submission

if TYPE_CHECKING:
    from serving.faults.generator import Generator


@dataclass
class Stage:
    """The running pieces of one fault run; a fault may replace the job, the REST client or the cluster's processes.

    Attributes:
        restores: jobs the faults resubmitted from a checkpoint or savepoint after a crash
            (each counts as one restart for C8: the job's own restart count starts again at 0).
        restore_after_s: how long a crashed cluster stays down before the restore (``txn-timeout``).
        generator: the input, whose rate a fault may change (``backpressure``).
    """

    cluster: LocalCluster
    rest: FlinkRest
    job_id: str
    broker: LocalBroker
    broker_port: int
    work_dir: Path
    broker_down_s: float = 30.0
    broker_pause_s: float = 20.0
    worker_stall_s: float = 90.0
    submission: Submission | None = None
    settings: KafkaSettings | None = None
    cluster_options: ClusterOptions | None = None
    restores: int = 0
    restore_after_s: float = 60.0
    generator: Generator | None = None
