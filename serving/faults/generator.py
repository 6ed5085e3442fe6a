"""The fault campaign's input: records whose delivery reports are the ground truth, and model versions over time.

Records are wine rows at a steady rate, produced with ``acks=all`` and
idempotence; only a record the broker acknowledged counts as sent, so a
fault that fails a send cannot make the oracle blame the job. A new model
version (alternately the linear PMML and the TF graph, or the kinds a
scenario names) is published every ``model_every_s``; the rate may change
while running (a burst). With ``poison_share`` a seeded share of the records is
garbage and every model version is followed by a corrupt model message:
those must end as dead letters and rejected model events.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from serving.clock import now_ms
from serving.kafka.clients import producer
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.records import wine
from serving.records.wine import encode_record
from serving.testing import corrupt_model_message, model_message

log = get_logger("faults.generator")

#: Model kinds published in turn (serving.testing.REFERENCE_MODELS; ``slow``: serving.faults.slow_model).
MODEL_KINDS = ("linear", "tf")


@dataclass
class PublishedModel:
    """A model version as published: its kind, ``created_at`` and the descriptor bytes."""

    version: str
    kind: str
    created_at: int
    message: bytes


@dataclass
class GroundTruth:
    """What the broker acknowledged: record id -> feature row (wine ids) or its bytes (garbage)."""

    rows: dict[str, int] = field(default_factory=dict)
    garbage: dict[str, bytes] = field(default_factory=dict)
    failed: int = 0
    models: list[PublishedModel] = field(default_factory=list)

    @property
    def acked_ids(self) -> set[str]:
        """Every acknowledged input: wine ids, and ``topic/partition/offset`` for garbage."""
        return set(self.rows) | set(self.garbage)


class Generator(threading.Thread):
    """Publishes records at ``rate``/s and model versions every ``model_every_s`` until :meth:`stop`."""

    def __init__(
        self,
        settings: KafkaSettings,
        *,
        rate: float = 200.0,
        model_every_s: float = 30.0,
        poison_share: float = 0.0,
        seed: int = 19,
        model_kinds: tuple[str, ...] = MODEL_KINDS,
    ) -> None:
        super().__init__(name="faults-generator", daemon=True)
        self.settings, self.rate, self.model_every_s = settings, rate, model_every_s
        self.poison_share, self.model_kinds = poison_share, model_kinds
        self.random = random.Random(seed)
        self.features: np.ndarray = wine.read_wine_csv(wine.reference_csv()).features
        self.truth = GroundTruth()
        self.sent = 0
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self.error: BaseException | None = None

    def publish_model(self, out=None) -> PublishedModel:
        """Publish the next model version now (and a corrupt one after it when poisoning)."""
        number = len(self.truth.models)
        version = f"m{number}"
        kind = self.model_kinds[number % len(self.model_kinds)]
        created = now_ms()
        if kind == "slow":
            from serving.faults.slow_model import slow_model_message

            message = slow_model_message(version, created, seed=number)
        else:
            message = model_message(kind, version, created)
        published = PublishedModel(version, kind, created, message)
        own = out is None
        out = out or producer(self.settings, acks="all")
        out.produce(self.settings.topics.models, published.message, key=b"wine")
        if self.poison_share:
            out.produce(self.settings.topics.models, corrupt_model_message(f"{version}-corrupt", created + 1))
        if own:
            out.flush(30)
        self.truth.models.append(published)
        log.info("model published", extra={"version": version, "model": kind})
        return published

    def run(self) -> None:
        """Send until stopped; every delivery report is recorded."""
        try:
            self._run()
        except BaseException as exc:  # reported by the runner
            self.error = exc

    def _run(self) -> None:
        out = producer(self.settings, acks="all", **{"enable.idempotence": True})
        next_model = time.monotonic() + self.model_every_s
        tick = 0.05
        owed = 0.0
        while not self._halt.is_set():
            started = time.monotonic()
            if started >= next_model:
                self.publish_model(out)
                next_model += self.model_every_s
            owed += self.rate * tick  # read each tick: a burst changes the rate while running
            while owed >= 1:
                owed -= 1
                self._send_one(out)
            out.poll(0)
            time.sleep(max(0.0, tick - (time.monotonic() - started)))
        out.flush(60)

    def _send_one(self, out) -> None:
        i = self.sent
        self.sent += 1
        if self.poison_share and self.random.random() < self.poison_share:
            # 0xff is no protobuf tag, '{' or Avro's magic byte: the JVM names such a record by its coordinates.
            payload = b"\xff" + self.random.randbytes(self.random.randint(0, 40))
            out.produce(self.settings.topics.data, payload, on_delivery=self._garbage_delivered(payload))
            return
        record_id = f"r{i}"
        row = i % len(self.features)
        out.produce(
            self.settings.topics.data,
            encode_record(record_id, self.features[row], ts=now_ms()),
            on_delivery=self._delivered(record_id, row),
        )

    def _delivered(self, record_id: str, row: int):
        def report(err, msg) -> None:
            with self._lock:
                if err is None:
                    self.truth.rows[record_id] = row
                else:
                    self.truth.failed += 1

        return report

    def _garbage_delivered(self, payload: bytes):
        def report(err, msg) -> None:
            with self._lock:
                if err is None:
                    self.truth.garbage[f"{msg.topic()}/{msg.partition()}/{msg.offset()}"] = payload
                else:
                    self.truth.failed += 1

        return report

    def stop(self) -> GroundTruth:
        """Stop sending and wait for every delivery report; returns the ground truth."""
        self._halt.set()
        self.join(120)
        return self.truth
