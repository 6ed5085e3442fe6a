"""The plain confluent-kafka baseline: the single-process loop a user would write instead of a Flink job.

``python -m serving.bench.plain`` runs it on the topics of the environment
(``MODELSERVING_KAFKA_*``, as :mod:`serving.bench.run` sets them): wait for the
model on the models topic, then consume records, score them, and produce the
results until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Sequence

from serving.bench.configs import BenchError
from serving.codecs.outputs import results_for
from serving.core.model import Model
from serving.errors import RecordDecodeError, ServingError
from serving.kafka.clients import consumer, poll_batches, produce_with_backpressure, producer
from serving.kafka.settings import KafkaSettings
from serving.logs import get_logger
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.wine import decode_record, features_matrix

log = get_logger("bench")


def score_messages(model: Model, payloads: Sequence[bytes]) -> list[ServingResult]:
    """Decode ``WineRecord`` messages and score them in one ``score_batch`` call: the plain loop's unit of work.

    Undecodable messages are logged and skipped (the plain loop has no dead
    letters); an empty batch makes no call.
    """
    records = []
    for payload in payloads:
        try:
            records.append(decode_record(payload))
        except RecordDecodeError as exc:
            log.warning("record skipped", extra={"reason": str(exc)})
    if not records:
        return []
    return results_for(model, records, model.score_batch(features_matrix(records)))


def await_model(settings: KafkaSettings, timeout_s: float = 60.0) -> Model:
    """Load the latest model on the models topic, waiting up to ``timeout_s`` for one.

    Raises:
        BenchError: no model arrived in time.
        KafkaReadError: the models topic cannot be read.
        ModelLoadError: the model does not load.
    """
    from serving.formats import load_model, parse_descriptor

    reader = consumer(settings, group_id=f"{settings.group_id}-plain-models-{uuid.uuid4().hex[:6]}")
    reader.subscribe([settings.topics.models])
    latest: bytes | None = None
    try:
        for batch in poll_batches(reader, wait_s=0.5, until=time.monotonic() + timeout_s):
            if batch:
                latest = batch[-1].value()
            elif latest is not None:
                break  # the topic is drained: keep the last one
    finally:
        reader.close()
    if latest is None:
        raise BenchError(f"no model on {settings.topics.models} within {timeout_s:.0f}s")
    return load_model(parse_descriptor(latest))


def plain_worker(
    settings: KafkaSettings, stop: threading.Event | None = None, batch: int = 1, transactional: bool = False
) -> int:
    """The plain baseline: consume records, score them, produce the results; until ``stop``.

    A single process. ``batch == 1``: one record per poll and one
    ``score_batch`` call per record. ``batch > 1``: up to ``batch`` records per
    poll (those already buffered; it does not wait for a full batch) and one
    ``score_batch`` call for them all, as a fair peer of the micro-batching
    jobs. Undecodable records are skipped and logged. Returns the number of
    results produced.

    ``transactional``: exactly once, as a user who needs it would write the
    loop: per poll, one Kafka transaction holds the results and the consumed
    offsets (``send_offsets_to_transaction``). Otherwise an idempotent
    producer and auto-committed offsets: at least once.

    Raises:
        KafkaReadError: the data topic cannot be read.
    """
    model = await_model(settings)
    commit = {"enable.auto.commit": not transactional}
    source = consumer(settings, group_id=f"{settings.group_id}-plain", **commit)
    source.subscribe([settings.topics.data])
    sink = producer(settings, **({"transactional.id": f"{settings.group_id}-plain-tx"} if transactional else {}))
    if transactional:
        sink.init_transactions(30)
    produced = 0
    log.info(
        "plain worker serving",
        extra={"model": model.name, "version": model.version, "transactional": transactional},
    )
    try:
        for messages in poll_batches(source, max_batch=batch, wait_s=0.5, stop=stop):
            if not messages:
                continue
            if transactional:
                sink.begin_transaction()
            for result in score_messages(model, [m.value() for m in messages]):
                produce_with_backpressure(sink, settings.topics.results, result.SerializeToString())
                produced += 1
            if transactional:
                sink.send_offsets_to_transaction(source.position(source.assignment()), source.consumer_group_metadata())
                sink.commit_transaction()
    finally:
        if not transactional:
            sink.flush(30)
        source.close()
        model.close()
    return produced


def main(argv: list[str] | None = None) -> int:
    """``python -m serving.bench.plain``: run the plain baseline on the topics from the environment.

    Returns:
        The exit code: 0 after SIGTERM (the count of results produced goes to
        stderr as JSON), 1 on a :class:`ServingError`, 130 on Ctrl-C.
    """
    from serving import logs

    logs.configure()
    parser = argparse.ArgumentParser(prog="serving.bench.plain", description="The plain confluent-kafka baseline.")
    parser.add_argument("--bootstrap-servers", default=None)
    parser.add_argument("--batch", type=int, default=1, help="records per poll and score_batch call")
    parser.add_argument("--transactional", action="store_true", help="one transaction per poll: exactly once")
    args = parser.parse_args(argv)
    try:
        settings = KafkaSettings.load(bootstrap_servers=args.bootstrap_servers)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        produced = plain_worker(settings, stop, batch=max(args.batch, 1), transactional=args.transactional)
    except ServingError as exc:
        print(f"serving.bench.plain: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    print(json.dumps({"produced": produced}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
