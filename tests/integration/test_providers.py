"""Kafka providers against a real broker: data, models, model cycling, results, and the CLI."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid

import pytest

from serving.cli import main
from serving.core.model import ModelType
from serving.formats import parse_descriptor
from serving.kafka.clients import consumer, poll_batches, producer
from serving.kafka.providers.common import InlineModelTooLarge, TopicMissing
from serving.kafka.providers.data import publish_data
from serving.kafka.providers.models import cycle_models, discover_models, publish_model
from serving.kafka.providers.results import tail_results
from serving.ops.broker import LocalBroker
from serving.pb.serving_result_pb2 import ServingResult
from serving.records import wine
from serving.records.wine import decode_record
from tests.support.kafka import read_all
from tests.support.reference import PMML_LINEAR, PMML_TREE, PROJECT_ROOT, REFERENCE_MODELS, TF_GRAPH, TF_SAVED

pytestmark = pytest.mark.kafka

DOWN = "127.0.0.1:1"  # nothing listens on port 1


def read_keyed(settings, topic: str, expected: int, timeout: float = 20.0) -> list[tuple[bytes, bytes]]:
    """(key, value) of the first ``expected`` committed messages of ``topic``."""
    reader = consumer(settings, group_id=f"keyed-{uuid.uuid4().hex[:8]}")
    reader.subscribe([topic])
    out: list[tuple[bytes, bytes]] = []
    try:
        for batch in poll_batches(reader, until=time.monotonic() + timeout):
            out.extend((message.key(), message.value()) for message in batch)
            if len(out) >= expected:
                break
    finally:
        reader.close()
    return out


def small_csv(tmp_path, rows: int = 3):
    features = wine.read_wine_csv(wine.reference_csv()).features[:rows]
    path = tmp_path / "small.csv"
    path.write_text("\n".join(";".join(str(v) for v in row) for row in features) + "\n")
    return path, features


# --------------------------------------------------------------------------- publish_data


def test_publish_data_ids_timestamps_and_pacing(kafka_settings):
    count, rate = 25, 50.0
    seen: list[int] = []
    before = int(time.time() * 1000)
    started = time.monotonic()
    sent = publish_data(kafka_settings, wine.reference_csv(), rate=rate, count=count, progress=seen.append)
    elapsed = time.monotonic() - started
    after = int(time.time() * 1000)
    assert sent == count
    assert seen == list(range(1, count + 1))
    # Pacing sleeps, so it can only be slower than asked: a lower bound is safe, the upper one is loose.
    assert (count - 1) / rate * 0.9 <= elapsed < 60

    messages = read_keyed(kafka_settings, kafka_settings.topics.data, count)
    records = [decode_record(value) for _key, value in messages]
    assert all(key.decode() == record.id for (key, _), record in zip(messages, records))
    assert sorted(int(r.id) for r in records) == list(range(count))
    assert all(r.data_type == "wine" and before <= r.ts <= after for r in records)
    by_row = sorted(records, key=lambda r: int(r.id))
    assert all(a.ts <= b.ts for a, b in itertools.pairwise(by_row))  # stamped at send, in row order
    features = wine.read_wine_csv(wine.reference_csv()).features
    assert by_row[7].alcohol == pytest.approx(features[7][10])


def test_publish_data_cycles_with_unique_ids(kafka_settings, tmp_path):
    csv, features = small_csv(tmp_path, rows=3)
    sent = publish_data(kafka_settings, csv, rate=0, count=8, data_type="wine-test", id_prefix="p")
    assert sent == 8
    records = [decode_record(v) for v in read_all(kafka_settings, kafka_settings.topics.data, expected=8)]
    assert sorted(r.id for r in records) == sorted(["p0", "p1", "p2", "p1-0", "p1-1", "p1-2", "p2-0", "p2-1"])
    assert {r.data_type for r in records} == {"wine-test"}
    by_id = {r.id: r for r in records}
    assert by_id["p2-1"].alcohol == pytest.approx(features[1][10]) == pytest.approx(by_id["p1"].alcohol)


def test_publish_data_to_a_missing_topic_fails_at_once(kafka_settings):
    settings = kafka_settings.model_copy(
        update={"topics": kafka_settings.topics.model_copy(update={"data": "no-such-topic"})}
    )
    started = time.monotonic()
    with pytest.raises(TopicMissing, match=r"no-such-topic.*kafka topics"):
        publish_data(settings, wine.reference_csv(), rate=0, count=1)
    assert time.monotonic() - started < 15


# --------------------------------------------------------------------------- publish_model


def test_publish_model_inline(kafka_settings):
    descriptor = publish_model(kafka_settings, PMML_LINEAR, ModelType.PMML, name="linear", version="v1")
    assert descriptor.WhichOneof("content") == "data"
    [(key, value)] = read_keyed(kafka_settings, kafka_settings.topics.models, 1)
    assert key == b"wine"
    published = parse_descriptor(value)
    assert (published.name, published.version, published.model_type) == ("linear", "v1", ModelType.PMML)
    assert published.data == PMML_LINEAR.read_bytes()
    assert published.sha256 == descriptor.sha256


def test_publish_model_goes_by_reference_above_the_inline_limit(kafka_settings):
    small_limit = kafka_settings.model_copy(update={"inline_model_max_bytes": 5_000})
    inline = publish_model(kafka_settings, PMML_TREE, ModelType.PMML)  # 33 KB: inline at the default limit
    by_ref = publish_model(small_limit, PMML_TREE, ModelType.PMML)
    assert inline.WhichOneof("content") == "data"
    assert by_ref.WhichOneof("content") == "location"
    assert by_ref.location == str(PMML_TREE.resolve())
    assert by_ref.version == inline.version and by_ref.sha256 == inline.sha256  # same artifact, same version
    values = read_all(kafka_settings, kafka_settings.topics.models, expected=2)
    assert [parse_descriptor(v).WhichOneof("content") for v in values] == ["data", "location"]


def test_force_inline_above_the_limit_is_an_error(kafka_settings):
    small_limit = kafka_settings.model_copy(update={"inline_model_max_bytes": 5_000})
    with pytest.raises(InlineModelTooLarge, match="--by-reference"):
        publish_model(small_limit, PMML_TREE, ModelType.PMML, force_inline=True)


def test_saved_model_directory_publishes_inline_as_an_archive(kafka_settings):
    descriptor = publish_model(kafka_settings, TF_SAVED, ModelType.TENSORFLOW_SAVED, data_type="wine-saved")
    [(key, value)] = read_keyed(kafka_settings, kafka_settings.topics.models, 1)
    assert key == b"wine-saved"
    assert parse_descriptor(value).data[:2] == b"\x1f\x8b" == descriptor.data[:2]  # gzip


# --------------------------------------------------------------------------- cycle_models


@pytest.fixture
def manifest_dir(tmp_path):
    """A directory laid out like `modelserving train` output, with the reference models."""
    root = tmp_path / "models"
    root.mkdir()
    shutil.copy(PMML_LINEAR, root / "linear.pmml")
    shutil.copy(TF_GRAPH, root / "mlp.pb")
    shutil.copytree(TF_SAVED, root / "mlp_savedmodel")
    artifacts = [
        {"path": "mlp.pb", "type": "tensorflow", "name": "wine_mlp", "kind": "classification", "metadata": {}},
        {
            "path": "mlp_savedmodel",
            "type": "tensorflow_saved",
            "name": "wine_mlp_saved",
            "kind": "classification",
            "metadata": {"signature": "serving_default"},
        },
        {"path": "linear.pmml", "type": "pmml", "name": "wine_linear", "kind": "regression", "metadata": {}},
    ]
    manifest = {"seed": 42, "epochs": 1, "rows": 1599, "artifacts": artifacts}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_cycle_models_publishes_every_manifest_model_each_round(kafka_settings, manifest_dir):
    announced = []
    started = time.monotonic()
    count = cycle_models(
        kafka_settings, manifest_dir, every_seconds=0.1, rounds=2, on_publish=announced.append, data_type="wine"
    )
    elapsed = time.monotonic() - started
    assert count == 6 and len(announced) == 6
    assert elapsed >= 5 * 0.1 * 0.9  # five pauses, none after the last model
    published = [parse_descriptor(v) for v in read_all(kafka_settings, kafka_settings.topics.models, expected=6)]
    names = ["wine_mlp", "wine_mlp_saved", "wine_linear"]
    assert [d.name for d in published] == names * 2
    assert [d.model_type for d in published[:3]] == [ModelType.TENSORFLOW, ModelType.TENSORFLOW_SAVED, ModelType.PMML]
    assert published[1].metadata["signature"] == "serving_default"
    # A second round must not look like a replay to the serving job: new versions.
    assert all(d.version.endswith("-r2") for d in published[3:])
    assert len({d.version for d in published}) == 6
    # Files keep their content version (a SavedModel's archive, by its gzip header time, need not).
    for first, second in ((published[0], published[3]), (published[2], published[5])):
        assert second.version == f"{first.version}-r2" and second.sha256 == first.sha256


def test_cycle_models_stops_on_event(kafka_settings, manifest_dir):
    stop = threading.Event()
    count = cycle_models(
        kafka_settings, manifest_dir, every_seconds=30, rounds=None, stop_event=stop, on_publish=lambda _d: stop.set()
    )
    assert count == 1  # the 30 s pause after the first model ends at once


def test_discover_models_without_manifest():
    entries = {entry.name: entry for entry in discover_models(REFERENCE_MODELS)}
    assert entries["optimized_WineQuality"].model_type == "tensorflow"
    assert entries["wine_savedmodel"].model_type == "tensorflow_saved"  # saved_model.pb in 1/
    assert entries["winequalityLinearRegression"].model_type == "pmml"
    assert len(entries) == 5


# --------------------------------------------------------------------------- tail_results


def _result(i: int) -> ServingResult:
    return ServingResult(
        model_name="m", model_version="v1", data_type="wine", record_id=str(i), record_ts=i, score=i / 2, duration_ns=i
    )


def test_tail_results_decodes_only_committed_results(kafka_settings):
    topic = kafka_settings.topics.results
    plain = producer(kafka_settings)
    for i in range(3):
        plain.produce(topic, key=str(i).encode(), value=_result(i).SerializeToString())
    plain.produce(topic, key=b"junk", value=b"\xff\xff\xff")  # not a ServingResult: skipped
    plain.flush(10)
    txn = producer(kafka_settings, **{"transactional.id": f"tail-{uuid.uuid4().hex[:8]}"})
    txn.init_transactions(10)
    txn.begin_transaction()
    txn.produce(topic, value=_result(100).SerializeToString())
    txn.abort_transaction(10)  # read_committed: never shown
    txn.begin_transaction()
    txn.produce(topic, value=_result(3).SerializeToString())
    txn.commit_transaction(10)

    results = list(tail_results(kafka_settings, from_beginning=True, limit=None, timeout=3))
    assert sorted(r.record_id for r in results) == ["0", "1", "2", "3"]
    assert {r.record_id: r for r in results}["2"] == _result(2)

    limited = list(tail_results(kafka_settings, from_beginning=True, limit=2, timeout=10))
    assert len(limited) == 2
    assert list(tail_results(kafka_settings, from_beginning=False, limit=None, timeout=1)) == []


def test_tail_results_of_a_missing_topic(kafka_settings):
    settings = kafka_settings.model_copy(
        update={"topics": kafka_settings.topics.model_copy(update={"results": "no-such-results"})}
    )
    with pytest.raises(TopicMissing):
        next(tail_results(settings, from_beginning=True, limit=None, timeout=1))


# --------------------------------------------------------------------------- CLI


@pytest.fixture
def config_toml(kafka_settings, tmp_path):
    """A --kafka-config file naming the test broker and this test's topics."""
    lines = ["[kafka]", f'bootstrap_servers = "{kafka_settings.bootstrap_servers}"', "[kafka.topics]"]
    lines += [f'{role} = "{topic}"' for role, topic in kafka_settings.topics.all().items()]
    path = tmp_path / "kafka.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_publish_and_tail(kafka_settings, config_toml, capsys, monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("MODELSERVING_KAFKA_"):
            monkeypatch.delenv(name)
    cfg = ["--kafka-config", str(config_toml)]
    csv, _ = small_csv(tmp_path, rows=3)
    assert main(["publish", "data", "--data", str(csv), "--rate", "0", "--count", "5", *cfg]) == 0
    assert "sent 5 wine records" in capsys.readouterr().err
    assert len(read_all(kafka_settings, kafka_settings.topics.data, expected=5)) == 5

    assert main(["publish", "model", str(PMML_LINEAR), "--type", "pmml", "--version", "cli-1", *cfg]) == 0
    out = capsys.readouterr().out
    assert "published winequalityLinearRegression version cli-1 (pmml, inline" in out

    plain = producer(kafka_settings)
    for i in range(3):
        plain.produce(kafka_settings.topics.results, value=_result(i).SerializeToString())
    plain.flush(10)
    assert main(["results", "tail", "--from-beginning", "--limit", "2", "--timeout", "10", *cfg]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # not a terminal: JSON lines
    assert len(lines) == 2 and {line["model_name"] for line in lines} == {"m"}


def _run_cli(*argv: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELSERVING_")}
    return subprocess.Popen(
        [sys.executable, "-m", "serving.cli", *argv],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_against_a_down_broker_is_one_line(tmp_path):
    commands = {
        "kafka": ["kafka", "topics", "--bootstrap-servers", DOWN],
        "publish": ["publish", "data", "--rate", "10", "--bootstrap-servers", DOWN],
        "publish-model": ["publish", "model", str(PMML_LINEAR), "--type", "pmml", "--bootstrap-servers", DOWN],
        "publish-models": ["publish", "models", str(REFERENCE_MODELS), "--every", "1s", "--bootstrap-servers", DOWN],
        "results": ["results", "tail", "--bootstrap-servers", DOWN],
    }
    started = time.monotonic()
    # In parallel: each waits for the broker's answer (5 s) before giving up.
    procs = {name: (argv, _run_cli(*argv)) for name, argv in commands.items()}
    for name, (argv, proc) in procs.items():
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 1, (argv, err)
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1, (argv, err)
        prefix = "modelserving " + name.split("-")[0]
        assert lines[0].startswith(f"{prefix}: error:") and DOWN in lines[0], lines[0]
    assert time.monotonic() - started < 60


def test_cli_kafka_start_status_stop(tmp_path, capsys):
    state = tmp_path / "kafka-state"
    stopped = _run_cli("kafka", "status", "--state-dir", str(state))
    out, err = stopped.communicate(timeout=60)
    assert stopped.returncode == 3 and out.strip() == f"kafka stopped (state {state})" and err == ""

    try:
        assert main(["kafka", "start", "--port", "0", "--state-dir", str(state)]) == 0
        assert capsys.readouterr().out.startswith("kafka running: pid ")
        status = LocalBroker(state).status()
        assert status.running
        assert main(["kafka", "status", "--state-dir", str(state)]) == 0
        assert status.bootstrap in capsys.readouterr().out
        # No bootstrap given anywhere: the command finds the local broker of --state-dir.
        assert main(["kafka", "topics", "--state-dir", str(state), "--partitions", "1"]) == 0
        out = capsys.readouterr().out
        assert f"topics at {status.bootstrap}:" in out and "wine-data" in out
    finally:
        assert main(["kafka", "stop", "--state-dir", str(state)]) == 0
    assert capsys.readouterr().out.startswith("kafka stopped")
    assert main(["kafka", "status", "--state-dir", str(state)]) == 3
    assert main(["kafka", "reset", "--state-dir", str(state)]) == 0
    assert not (state / "data").exists()


def test_a_cluster_id_that_starts_with_a_dash_still_formats(tmp_path, monkeypatch):
    import uuid

    import serving.ops.broker as broker_module

    # 0xF8 makes the base64url id start with "-", which StorageTool took for a flag.
    dashed = uuid.UUID(bytes=b"\xf8" + b"\x01" * 15)
    monkeypatch.setattr(broker_module.uuid, "uuid4", lambda: dashed)
    local = LocalBroker(tmp_path / "kafka")
    try:
        assert local.start(port=0).running
    finally:
        local.stop()
