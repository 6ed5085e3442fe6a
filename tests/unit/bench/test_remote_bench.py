"""The remote-against-embedded configurations: their list, the ratios, the remote descriptor, the side venv check.

The model itself is checked against scikit-learn's own ``predict_proba``
(the oracle): the training script run here, its joblib loaded back, and
the ONNX copy rebuilt from its parameters.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from serving.bench.configs import CONFIGS, RATIO_PAIRS, SK_MODEL_NAME, BenchError, parse_only
from serving.bench.report import BenchResult, markdown_section, pair_ratios
from serving.bench.sklearn_model import (
    TRAIN_SCRIPT,
    SkModel,
    check_agreement,
    onnx_from_params,
    remote_model_descriptor,
    require_side_venv,
    train_sk_model,
)
from serving.errors import RemoteLocationError
from serving.formats.registry import format_of
from serving.records import wine

SK = SkModel(Path("/nonexistent/wine-sk.onnx"), Path("/nonexistent/repo"), ("3", "4", "5", "6", "7", "8"))


def _result(name: str, job_args: tuple[str, ...] = (), **values) -> BenchResult:
    result = BenchResult(CONFIGS[name], 1, 20_000, 1_000)
    result.job_args = job_args
    for key, value in values.items():
        setattr(result, key, value)
    return result


# --- the configurations


def test_the_two_configurations_serve_one_trained_model_in_the_keyed_job():
    embedded, remote = CONFIGS["keyed-sk-embedded"], CONFIGS["keyed-sk-remote"]
    for config in (embedded, remote):
        assert (config.runner, config.job, config.trained, config.model_path) == ("flink", "keyed", True, None)
        assert config.expected_model_name == SK_MODEL_NAME == "wine-sk"
    assert (embedded.model_type, remote.model_type) == ("onnx", "oip")
    assert embedded.model_label == "wine-sk (onnx)" and remote.model_label == "wine-sk (oip, MLServer)"
    assert [c.name for c in parse_only("keyed-sk-remote,keyed-sk-embedded")] == ["keyed-sk-embedded", "keyed-sk-remote"]
    assert ("keyed-sk-remote", "keyed-sk-embedded", "remote") in RATIO_PAIRS
    assert not any(c.trained for n, c in CONFIGS.items() if not n.startswith("keyed-sk-"))


# --- the ratios


def test_ratios_are_remote_over_embedded_for_throughput_and_both_latencies():
    results = [
        _result("keyed-sk-embedded", throughput=8_000.0, p50_ms=40, p99_ms=100),
        _result("keyed-sk-remote", throughput=2_000.0, p50_ms=120, p99_ms=450),
    ]
    (only,) = pair_ratios(results)
    assert (only.variant, only.baseline) == ("keyed-sk-remote", "keyed-sk-embedded")
    assert (only.throughput, only.p50, only.p99) == (0.25, 3.0, 4.5)
    assert only.line() == (
        "keyed-sk-remote / keyed-sk-embedded: throughput 0.25x, p50 latency 3.00x, p99 latency 4.50x"
    )


def test_ratios_need_both_configurations_and_pair_them_by_job_flags():
    assert pair_ratios([_result("keyed-sk-remote", throughput=1.0), _result("keyed-tf", throughput=2.0)]) == []
    small, large = ("--batch-size", "100"), ("--batch-size", "1000")
    results = [
        _result("keyed-sk-embedded", small, throughput=1_000.0, p50_ms=10, p99_ms=20),
        _result("keyed-sk-remote", small, throughput=500.0, p50_ms=30, p99_ms=80),
        _result("keyed-sk-embedded", large, throughput=4_000.0, p50_ms=50, p99_ms=None),
        _result("keyed-sk-remote", large, throughput=1_000.0, p50_ms=100, p99_ms=300),
    ]
    ratios = pair_ratios(results)
    assert [(r.job_args, r.throughput, r.p50, r.p99) for r in ratios] == [
        (small, 0.5, 3.0, 4.0),
        (large, 0.25, 2.0, None),  # the embedded p99 was not measured
    ]
    assert ratios[1].line().endswith("p99 latency -") and "(job flags --batch-size 1000)" in ratios[1].line()


def test_a_zero_or_missing_embedded_figure_gives_no_ratio():
    results = [
        _result("keyed-sk-embedded", throughput=None, p50_ms=0, p99_ms=10),
        _result("keyed-sk-remote", throughput=900.0, p50_ms=5, p99_ms=None),
    ]
    (only,) = pair_ratios(results)
    assert (only.throughput, only.p50, only.p99) == (None, None, None)


def test_the_markdown_section_and_the_printed_summary_give_the_ratios(tmp_path, monkeypatch, capsys):
    from serving.bench.configs import BenchPlan
    from serving.cli import bench as bench_cli
    from serving.cli import build_parser

    results = [
        _result("keyed-sk-embedded", throughput=6_000.0, p50_ms=50, p99_ms=200, exactly_once=True),
        _result("keyed-sk-remote", throughput=1_500.0, p50_ms=75, p99_ms=500, exactly_once=True),
    ]
    expected = "keyed-sk-remote / keyed-sk-embedded: throughput 0.25x, p50 latency 1.50x, p99 latency 2.50x"
    assert f"- {expected}" in markdown_section(results, BenchPlan(), "modelserving bench", {}).splitlines()
    assert "Remote / embedded" not in markdown_section(results[:1], BenchPlan(), "modelserving bench", {})

    monkeypatch.setattr("serving.bench.run.run_bench", lambda *args: results)
    monkeypatch.setattr("serving.kafka.clients.check_reachable", lambda settings: None)
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "keyed-sk-embedded,keyed-sk-remote", "--bootstrap-servers", "127.0.0.1:1"]
    assert bench_cli.run_bench_command(build_parser().parse_args([*args, "--json", str(out)])) == 0
    assert f"remote / embedded, same model: {expected}" in " ".join(capsys.readouterr().out.split())
    written = json.loads(out.read_text())
    assert [o["name"] for o in written] == ["keyed-sk-embedded", "keyed-sk-remote"]
    assert set(written[0]) == set(results[0].summary())  # the JSON gains nothing but the rows


# --- the remote configuration's descriptor


def test_the_remote_descriptor_names_the_model_on_the_server_and_asks_for_probabilities():
    descriptor = remote_model_descriptor(SK, "http://127.0.0.1:8080", "bench")
    assert format_of(descriptor) == "oip"
    assert descriptor.location == "http://127.0.0.1:8080"
    assert (descriptor.name, descriptor.version, descriptor.data_type) == ("wine-sk", "bench", "wine")
    assert dict(descriptor.metadata) == {
        "model_name": "wine-sk",
        "output_name": "predict_proba",
        "feature_names": ",".join(wine.FEATURE_NAMES),
        "labels": "3,4,5,6,7,8",
    }


def test_the_remote_descriptor_refuses_a_server_off_the_allow_list():
    with pytest.raises(RemoteLocationError):
        remote_model_descriptor(SK, "http://example.com:8080", "bench")


def test_publishing_the_remote_configuration_sends_its_oip_descriptor(monkeypatch):
    from serving.bench.publishing import publish_model
    from serving.kafka.settings import KafkaSettings

    sent = []
    monkeypatch.setattr("serving.kafka.providers.models.publish_descriptor", lambda settings, d: sent.append(d))
    settings = KafkaSettings(bootstrap_servers="127.0.0.1:1")
    created_at = publish_model(settings, CONFIGS["keyed-sk-remote"], "bench-swap", sk=SK, server_url="http://[::1]:9")
    (descriptor,) = sent
    assert descriptor.created_at == created_at and descriptor.version == "bench-swap"
    assert format_of(descriptor) == "oip" and descriptor.location == "http://[::1]:9"
    with pytest.raises(BenchError, match="keyed-sk-remote needs the trained model"):
        publish_model(settings, CONFIGS["keyed-sk-remote"], sk=SK)  # no server
    with pytest.raises(BenchError, match="keyed-sk-embedded needs the trained model"):
        publish_model(settings, CONFIGS["keyed-sk-embedded"])


# --- MLServer's venv


def test_a_missing_side_venv_is_a_one_line_error_saying_what_to_run(tmp_path):
    from serving.bench.mlserver import running_mlserver

    missing = tmp_path / "no-venv"
    with pytest.raises(BenchError, match=r"has no python or mlserver: run make sidevenvs$") as caught:
        require_side_venv(missing)
    assert "\n" not in str(caught.value)
    with pytest.raises(BenchError, match="run make sidevenvs"):
        train_sk_model(tmp_path, venv=missing)
    with pytest.raises(BenchError, match="run make sidevenvs"), running_mlserver(tmp_path, venv=missing):
        pass
    (missing / "bin").mkdir(parents=True)
    (missing / "bin" / "python").touch()
    with pytest.raises(BenchError, match="has no mlserver: run make sidevenvs"):
        require_side_venv(missing)
    (missing / "bin" / "mlserver").touch()
    assert require_side_venv(missing) == missing / "bin"


# --- the model: scikit-learn's own predict_proba is the oracle


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, dict]:
    """The training script run by this venv's python (in the bench: MLServer's), on the wine reference rows."""
    work = tmp_path_factory.mktemp("sk")
    data = wine.read_wine_csv(wine.reference_csv())
    rows = work / "rows.json"
    rows.write_text(json.dumps({"features": data.features.tolist(), "target": data.quality.astype(int).tolist()}))
    proc = subprocess.run(
        [sys.executable, "-P", str(TRAIN_SCRIPT), str(rows), str(work / "repo"), "wine-sk", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return work / "repo", json.loads((work / "repo" / "wine-sk.params.json").read_text())


def test_the_training_script_lays_out_a_model_mlserver_serves(trained):
    import joblib

    repository, params = trained
    settings = json.loads((repository / "wine-sk" / "model-settings.json").read_text())
    assert settings["name"] == "wine-sk" and settings["implementation"] == "mlserver_sklearn.SKLearnModel"
    assert settings["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 11]}]
    model = joblib.load(repository / "wine-sk" / "model.joblib")
    features = wine.read_wine_csv(wine.reference_csv()).features
    np.testing.assert_array_equal(model.predict_proba(features), np.asarray(params["predict_proba"]))
    assert params["classes"] == [int(c) for c in model.classes_] == [3, 4, 5, 6, 7, 8]


def test_the_onnx_copy_agrees_with_scikit_learn_to_1e_9_and_a_different_model_is_refused(trained):
    import joblib

    repository, params = trained
    features = wine.read_wine_csv(wine.reference_csv()).features
    oracle = joblib.load(repository / "wine-sk" / "model.joblib").predict_proba(features)
    onnx_bytes = onnx_from_params(params)
    assert check_agreement(onnx_bytes, features, oracle) <= 1e-9
    other = dict(params, intercept=[v + 0.01 for v in params["intercept"][:1]] + params["intercept"][1:])
    with pytest.raises(BenchError, match="differs from scikit-learn's"):
        check_agreement(onnx_from_params(other), features, oracle)


def test_a_challenger_configuration_publishes_the_same_model_again_in_its_role_and_pairs_with_its_baseline():
    from serving.bench.configs import BenchPlan

    shadow, canary, baseline = CONFIGS["keyed-tf-shadow"], CONFIGS["keyed-tf-canary"], CONFIGS["keyed-tf"]
    for config in (shadow, canary):
        assert (config.job, config.model_path, config.model_type) == (baseline.job, baseline.model_path, "tensorflow")
        assert config.expected_model_name == baseline.expected_model_name
    assert shadow.challenger_metadata == {"role": "shadow"}
    assert canary.challenger_metadata == {"role": "canary", "weight_bp": "2000"}
    assert baseline.challenger_metadata == {}
    assert CONFIGS["partitioned-tf-shadow"].job == "partitioned"
    results = [
        _result("keyed-tf", throughput=4_000.0, p50_ms=40, p99_ms=100),
        _result("keyed-tf-shadow", throughput=2_000.0, p50_ms=60, p99_ms=150),
    ]
    (only,) = pair_ratios(results)
    assert only.kind == "challenger"
    assert only.line() == "keyed-tf-shadow / keyed-tf: throughput 0.50x, p50 latency 1.50x, p99 latency 1.50x"
    section = markdown_section(results, BenchPlan(), "modelserving bench", {})
    assert "**With a challenger / without**" in section and "Remote / embedded" not in section
    assert f"- {only.line()}" in section.splitlines()
    results[0].last_result_s, results[1].last_result_s = 24.0, 40.5  # the same backlog, drained 16.5 s later
    (later,) = pair_ratios(results)
    assert later.line().endswith("p99 latency 1.50x, last pre-loaded result +16.5 s")
