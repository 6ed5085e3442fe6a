"""The swap rule on a real broker: which model scored each record, checked record by record.

The rule (README, "Which model scores a record"): a record is scored by the
latest accepted model with ``created_at <= ts``; a model that reaches the job
later than ``max_model_delay_ms`` after records it should have scored is
reported as ``LATE_MODEL``, naming how many records it missed. So every record
either follows the rule or is counted by a ``LATE_MODEL`` event of the model
it missed, and the counts add up.

Before the fix, in a clean steady stream 0 to 9 records per swap (of 600 at
80/s) were scored by the old model although their ``ts`` was after the new
model's ``created_at``, with nothing said.
"""

from __future__ import annotations

import bisect
import collections
import time

import pytest

from serving.clock import now_ms
from serving.kafka.clients import producer
from serving.ops.jobprocess import LocalJob
from serving.pb.dead_letter_pb2 import DeadLetter
from serving.pb.model_event_pb2 import ModelEvent
from serving.pb.serving_result_pb2 import ServingResult
from serving.records.wine import encode_record
from serving.testing import model_message as model
from tests.support.kafka import read_all, results, send, wait_for_event

pytestmark = [pytest.mark.kafka, pytest.mark.flink, pytest.mark.heavy]


def rule_breaks(
    scored: list[ServingResult], sent_ts: dict[str, int], models: list[tuple[int, str]], events: list[ModelEvent]
) -> tuple[list[str], dict[str, int]]:
    """Records scored against the rule and not reported, and per late model how many it reported missing.

    ``models`` are ``(created_at, version)``; a record older than every model
    belongs to the first (hold mode).
    """
    models = sorted(models)
    starts = [t for t, _ in models]
    late = collections.defaultdict(list)
    for event in events:
        if event.kind == ModelEvent.LATE_MODEL:
            late[event.version].append(event)
    unexplained, explained = [], collections.Counter()
    for result in scored:
        ts = sent_ts[result.record_id]
        expected = models[max(bisect.bisect_right(starts, ts) - 1, 0)][1]
        if result.model_version == expected:
            continue
        if any(e.missed_from <= ts <= e.missed_to for e in late[expected]):
            explained[expected] += 1
        else:
            unexplained.append(f"{result.record_id} (ts {ts}) scored by {result.model_version}, not {expected}")
    return unexplained, dict(explained)


def reported(events: list[ModelEvent]) -> dict[str, int]:
    """Per late model, the records its ``LATE_MODEL`` events say it missed."""
    counts = collections.Counter()
    for event in events:
        if event.kind == ModelEvent.LATE_MODEL:
            assert event.missed_exact, event
            counts[event.version] += event.missed
    return dict(counts)


def test_a_model_published_mid_stream_scores_every_record_after_it(kafka_settings, tmp_path, wine_data):
    rows = wine_data.features
    topics = kafka_settings.topics
    job = LocalJob(kafka_settings, "keyed", tmp_path, job_args=("--late-model-horizon-ms", "60000"))
    sent: dict[str, int] = {}
    models: list[tuple[int, str]] = []
    try:
        created = now_ms()
        send(kafka_settings, topics.models, [model("linear", "A", created)], key=b"wine")
        models.append((created, "A"))
        assert wait_for_event(kafka_settings, "A").kind == ModelEvent.ACCEPTED
        out = producer(kafka_settings)
        for i in range(600):  # 80 records/s, a swap at record 300
            if i == 300:
                created = now_ms()
                out.produce(topics.models, model("tf", "B", created), key=b"wine")
                models.append((created, "B"))
            ts = now_ms()
            out.produce(topics.data, encode_record(str(i), rows[i], ts=ts))
            out.poll(0)
            sent[str(i)] = ts
            time.sleep(1 / 80)
        out.flush(30)
        got = results(kafka_settings, 600, timeout=120)
        # Now a model whose created_at lies behind what was scored: it must say what it missed.
        late_at = sent["450"]
        send(kafka_settings, topics.models, [model("forest", "L", late_at)], key=b"wine")
        assert wait_for_event(kafka_settings, "L").kind == ModelEvent.ACCEPTED
        events = []
        deadline = time.monotonic() + 60
        while not any(e.kind == ModelEvent.LATE_MODEL for e in events) and time.monotonic() < deadline:
            events = [ModelEvent.FromString(v) for v in read_all(kafka_settings, topics.model_events, None, 5)]
    finally:
        job.stop()
    assert sorted(collections.Counter(r.record_id for r in got).values()) == [1] * 600
    unexplained, explained = rule_breaks(got, sent, models, events)
    assert unexplained == []
    assert {v: n for v, n in reported(events).items() if v in ("A", "B")} == explained
    [late] = [e for e in events if e.kind == ModelEvent.LATE_MODEL and e.version == "L"]
    missed = sum(1 for ts in sent.values() if ts >= late_at)
    assert (late.missed, late.missed_from, late.missed_exact) == (missed, late_at, True)


@pytest.mark.parametrize(("job", "parallelism"), [("keyed", 1), ("partitioned", 2)])
def test_a_job_started_over_a_backlog_applies_each_model_from_its_created_at(
    kafka_settings, tmp_path, wine_data, job, parallelism
):
    """Both topics hold a backlog with three models before the job starts, as after downtime or a restore."""
    rows = wine_data.features
    topics = kafka_settings.topics
    t0 = now_ms() - 120_000
    sent: dict[str, int] = {}
    models = [(t0, "A"), (t0 + 40_000, "B"), (t0 + 80_000, "C")]
    kinds = {"A": "linear", "B": "tf", "C": "forest"}
    for created, version in models:
        send(kafka_settings, topics.models, [model(kinds[version], version, created)], key=b"wine")
    records = []
    for i in range(1200):  # one record per 100 ms of event time, over 120 s
        sent[str(i)] = t0 + 100 * i + 7
        records.append(encode_record(str(i), rows[i], ts=sent[str(i)]))
    send(kafka_settings, topics.data, records)
    process = LocalJob(kafka_settings, job, tmp_path, parallelism=parallelism)
    try:
        got = results(kafka_settings, len(records), timeout=180)
        time.sleep(3)
        got = [ServingResult.FromString(v) for v in read_all(kafka_settings, topics.results, None, 10)]
        events = [ModelEvent.FromString(v) for v in read_all(kafka_settings, topics.model_events, None, 5)]
        letters = [DeadLetter.FromString(v) for v in read_all(kafka_settings, topics.dead_letters, None, 5)]
    finally:
        process.stop()
    missing = sorted(set(sent) - {r.record_id for r in got}, key=int)
    assert missing == [], (missing, [(d.record_id, d.reason) for d in letters][:20])
    assert sorted(collections.Counter(r.record_id for r in got).values()) == [1] * len(records)
    unexplained, explained = rule_breaks(got, sent, models, events)
    assert unexplained == []
    assert reported(events) == explained
    assert {r.model_version for r in got} == {"A", "B", "C"}
