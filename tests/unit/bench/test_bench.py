"""The benchmark's pure helpers: percentiles, throughput, id checks, Markdown, the plain loop's scoring."""

from __future__ import annotations

import numpy as np
import pytest

from serving.bench.configs import CONFIGS, BenchPlan, parse_only
from serving.bench.measures import (
    check_ids,
    latency_summary,
    parse_cpu_model,
    parse_mem_total_gib,
    percentile,
    throughput,
)
from serving.bench.plain import score_messages
from serving.bench.report import SECTION_BEGIN, SECTION_END, BenchResult, markdown_table, replace_section
from serving.core.model import Model, ModelDescriptor, ModelType, RawPrediction, classify
from serving.errors import ConfigError, EmptyInputError
from serving.records import wine
from serving.records.wine import encode_record

# --- percentile (nearest rank)


def test_percentile_of_one_to_hundred_is_the_rank_itself():
    values = list(range(100, 0, -1))  # unsorted on purpose
    assert percentile(values, 50) == 50
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile(values, 1) == 1


def test_percentile_takes_the_smallest_value_covering_q_percent():
    # 10 values: p50 covers 5 of them, p99 needs all 10 (ceil(9.9) = 10), p11 needs 2.
    values = [7, 1, 9, 3, 5, 2, 8, 4, 10, 6]
    assert percentile(values, 50) == 5
    assert percentile(values, 99) == 10
    assert percentile(values, 11) == 2
    assert percentile(values, 10) == 1


def test_percentile_is_always_an_observed_value():
    assert percentile([10, 20], 50) == 10  # not 15: no interpolation
    assert percentile([10, 20], 51) == 20
    assert percentile([42.5], 1) == 42.5


def test_percentile_refuses_empty_input_and_bad_q():
    with pytest.raises(EmptyInputError):
        percentile([], 50)
    for q in (0, -1, 100.5):
        with pytest.raises(ValueError):
            percentile([1, 2, 3], q)


def test_latency_summary_gives_p50_and_p99_or_nothing():
    assert latency_summary([]) == (None, None)
    assert latency_summary(list(range(1, 201))) == (100, 198)


# --- throughput from append timestamps


def test_throughput_counts_intervals_over_the_span():
    # 1,001 results evenly spread over one second: 1,000 intervals -> 1,000/s.
    assert throughput(range(5_000, 6_001)) == pytest.approx(1_000.0)
    # Order does not matter; only first and last stamps and the count do.
    assert throughput([3_000, 1_000, 2_000]) == pytest.approx(1.0)


def test_throughput_of_bursts_uses_first_and_last_stamp():
    stamps = [0] * 500 + [2_000] * 501  # two bursts two seconds apart
    assert throughput(stamps) == pytest.approx(500.0)


def test_steady_throughput_leaves_out_a_slow_start_and_end():
    from serving.bench.measures import steady_throughput

    warm_up = [0] * 10  # ten results at 0 ms, then 80 at one per ms from 1,000 ms, then 10 at 5,000 ms
    steady = list(range(1_000, 1_080))
    tail = [5_000] * 10
    assert steady_throughput(warm_up + steady + tail) == pytest.approx(1_000.0)
    assert throughput(warm_up + steady + tail) == pytest.approx(99 / 5)
    assert steady_throughput([1, 2]) == pytest.approx(1_000.0)  # too few to trim


def test_throughput_is_none_without_a_measurable_span():
    assert throughput([]) is None
    assert throughput([7]) is None
    assert throughput([7, 7, 7]) is None
    assert throughput(iter([1, 2])) == pytest.approx(1_000.0)  # any iterable


# --- id checks


def test_check_ids_passes_only_when_every_id_came_back_once():
    check = check_ids(["a", "b", "c"], {"a": 1, "b": 1, "c": 1})
    assert check.ok
    assert check.problems() == []


def test_check_ids_counts_missing_duplicated_and_unexpected():
    check = check_ids(["a", "b", "c", "d"], {"a": 1, "b": 3, "c": 0, "x": 1, "y": 2})
    assert (check.missing, check.duplicated, check.unexpected) == (2, 2, 2)
    assert not check.ok
    problems = " ".join(check.problems())
    assert "2 record ids missing" in problems
    assert "2 record ids came back more than once" in problems
    assert "2 results for record ids never sent" in problems


# --- configurations and flags


def test_parse_only_keeps_run_order_and_refuses_unknown_names():
    assert [c.name for c in parse_only(None)] == list(CONFIGS)
    assert [c.name for c in parse_only("plain-tf, passthrough")] == ["passthrough", "plain-tf"]
    with pytest.raises(ConfigError, match="keyed-onnx"):
        parse_only("keyed-tf,keyed-onnx")
    with pytest.raises(ConfigError):
        parse_only(",")


def test_every_model_configuration_names_the_model_its_results_must_carry():
    assert CONFIGS["passthrough"].expected_model_name == "passthrough"
    for name, config in CONFIGS.items():
        if name != "passthrough" and not config.trained:  # trained: a model fitted at run time (test_remote_bench)
            assert config.model_path is not None and config.model_path.exists()
            assert config.expected_model_name == config.model_path.stem
    assert {c.runner for c in CONFIGS.values()} == {"flink", "plain"}


@pytest.mark.parametrize(
    ("field", "value"),
    [("records", 0), ("latency_records", -1), ("latency_rate", 0), ("parallelism", 0), ("timeout_s", 0)],
)
def test_plan_refuses_values_no_run_could_use(field, value):
    with pytest.raises(ConfigError):
        BenchPlan(**{field: value}).validate()
    BenchPlan().validate()  # the defaults are fine


# --- Markdown


def _result(name: str = "keyed-tf", **values) -> BenchResult:
    result = BenchResult(CONFIGS[name], 1, 20_000, 2_000)
    for key, value in values.items():
        setattr(result, key, value)
    return result


def test_markdown_table_has_a_row_per_result_and_marks_failures():
    good = _result(throughput=12_345.6, p50_ms=250, p99_ms=900, seen_p50_ms=800, seen_p99_ms=1500, first_result_s=9.25)
    bad = _result("plain-pmml", problems=["3 record ids missing from the results"])
    lines = markdown_table([good, bad]).splitlines()
    assert len(lines) == 4
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[:5] == ["configuration", "P", "model", "records", "throughput rec/s"]
    cells = [c.strip() for c in lines[2].strip("|").split("|")]
    assert cells == [
        "keyed-tf",
        "1",
        "optimized_WineQuality.pb (tensorflow)",
        "20,000 + 2,000",
        "12,346",
        "250",
        "900",
        "800",
        "1,500",
        "9.2",
        "-",
        "-",
        "-",
        "-",
        "ok",
    ]
    failed = [c.strip() for c in lines[3].strip("|").split("|")]
    assert failed[4] == "-" and failed[-1] == "FAILED"


def test_replace_section_swaps_only_the_generated_part():
    document = f"# Benchmarks\n\nintro\n\n{SECTION_BEGIN}\nold table\n{SECTION_END}\n\n## Hand-written\nkeep me\n"
    updated = replace_section(document, "new table")
    assert "old table" not in updated
    assert f"{SECTION_BEGIN}\nnew table\n{SECTION_END}\n" in updated
    assert updated.startswith("# Benchmarks\n\nintro\n\n")
    assert updated.endswith("## Hand-written\nkeep me\n")
    assert replace_section(updated, "new table") == updated  # idempotent


def test_replace_section_appends_when_there_are_no_markers():
    updated = replace_section("# Benchmarks\n\nnotes\n", "table")
    assert updated == f"# Benchmarks\n\nnotes\n\n{SECTION_BEGIN}\ntable\n{SECTION_END}\n"
    assert replace_section("", "t") == f"{SECTION_BEGIN}\nt\n{SECTION_END}\n"


def test_machine_parsers_read_proc_files():
    cpuinfo = "processor\t: 0\nvendor_id\t: X\nmodel name\t: Intel(R) Xeon(R) CPU @ 2.20GHz\n\nprocessor\t: 1\n"
    assert parse_cpu_model(cpuinfo) == "Intel(R) Xeon(R) CPU @ 2.20GHz"
    assert parse_cpu_model("processor: 0\n") == "unknown"
    assert parse_mem_total_gib("MemTotal:       24576000 kB\nMemFree: 1 kB\n") == pytest.approx(24576000 / 1024**2)
    assert parse_mem_total_gib("") is None


# --- the plain loop's unit of work


class _FakeClassifier(Model):
    """Class "1" wins when alcohol exceeds 10, else class "0"; records the batch sizes it sees."""

    def __init__(self) -> None:
        super().__init__(ModelDescriptor(name="fake", version="v7", data_type="wine", model_type=ModelType.PMML), b"x")
        self.batches: list[int] = []

    def _predict(self, features: np.ndarray) -> RawPrediction:
        self.batches.append(len(features))
        high = (features[:, wine.RECORD_FIELDS.index("alcohol")] > 10).astype(float)
        return classify(np.column_stack([1 - high, high]), ("0", "1"))


def test_score_messages_scores_a_batch_in_one_call_and_skips_what_does_not_decode():
    model = _FakeClassifier()
    high = list(wine.PROBE_ROW)
    high[wine.RECORD_FIELDS.index("alcohol")] = 12.5
    payloads = [encode_record("r-1", high, ts=5), b"\xff not a record", encode_record("r-2", wine.PROBE_ROW, ts=6)]
    results = score_messages(model, payloads)
    assert model.batches == [2]
    assert [(r.record_id, r.record_ts, r.score) for r in results] == [("r-1", 5, 1.0), ("r-2", 6, 0.0)]
    assert {(r.model_name, r.model_version) for r in results} == {("fake", "v7")}
    assert score_messages(model, [b"\xff"]) == [] and model.batches == [2]


def test_sweep_pairs_parse_and_bad_ones_are_one_line_errors():
    from serving.bench.measures import parse_sweep

    assert parse_sweep("100:5, 1000:10") == [(100, 5), (1000, 10)]
    for bad in ["", "100", "100:x", "0:10", "10:0", "1:2:3"]:
        with pytest.raises(ConfigError, match="--sweep"):
            parse_sweep(bad)


def test_the_json_configurations_send_wine_rows_as_records_of_their_own_data_type():
    """keyed-json-tf measures the generic path: JSON on data.<type>, decoded by its schema to wine's values."""
    from serving.bench.records import JSON_DATA_TYPE, RecordSource
    from serving.kafka.settings import KafkaSettings
    from serving.records.schema import SchemaRegistry
    from serving.records.wine import FEATURE_NAMES, read_wine_csv, reference_csv
    from serving.records.wire import Coordinates, decode

    settings = KafkaSettings.load(bootstrap_servers="127.0.0.1:1", data_topic_prefix="b-data.")
    source = RecordSource(settings, "json")
    assert source.topic == "b-data.winejson" and source.data_type == JSON_DATA_TYPE
    payload = source.encode("t7", 7, ts=123)
    record = decode(payload, JSON_DATA_TYPE, SchemaRegistry([source.schema]), Coordinates("b-data.winejson", 0, 9, 456))
    row = read_wine_csv(reference_csv()).features[7]
    assert record.id == "t7" and record.ts == 456  # no time field: the Kafka timestamp
    assert len(FEATURE_NAMES) == len(source.schema.features) == 11
    assert [record.values[f.name] for f in source.schema.features] == [float(v) for v in row]
    assert RecordSource(settings, "wine").topic == settings.topics.data


def test_bench_json_has_one_object_per_configuration_with_its_figures(tmp_path, monkeypatch):
    import json

    from serving.bench.configs import BenchError
    from serving.cli import bench as bench_cli
    from serving.cli import build_parser

    results = [
        _result(throughput=9_000.4, p50_ms=40, p99_ms=95, exactly_once=True),
        _result(
            "plain-tx-tf", throughput=7_000.0, exactly_once=False, problems=["2 record ids came back more than once"]
        ),
    ]
    monkeypatch.setattr("serving.bench.run.run_bench", lambda *args: results)
    monkeypatch.setattr("serving.kafka.clients.check_reachable", lambda settings: None)
    out = tmp_path / "bench.json"
    args = ["bench", "--only", "keyed-tf,plain-tx-tf", "--bootstrap-servers", "127.0.0.1:1", "--json", str(out)]
    with pytest.raises(BenchError, match="1 of 2 configurations failed"):  # written before the failure is raised
        bench_cli.run_bench_command(build_parser().parse_args(args))
    written = json.loads(out.read_text())
    keys = ("name", "parallelism", "records_per_second", "p50_ms", "p99_ms", "exactly_once")
    assert [tuple(o[k] for k in keys) for o in written] == [
        ("keyed-tf", 1, 9_000.4, 40, 95, True),
        ("plain-tx-tf", 1, 7_000.0, None, None, False),
    ]
