"""Guards against hostile input that need no Flink: log lines, settings errors, REST binding, input ranges."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from serving import logs
from serving.errors import ConfigError, InputRangeError
from serving.kafka.settings import KafkaSettings
from serving.settings import JobSettings, ServingOptions

FORGED = 'evil\nts=2026-01-01T00:00:00 level=error logger=modelserving.job event="INJECTED LINE"'


def _line(**extra) -> str:
    record = logging.makeLogRecord({"name": "modelserving.keyed", "levelname": "INFO", "msg": "model accepted"})
    record.__dict__.update(extra)
    return logs.KeyValueFormatter().format(record)


@pytest.mark.parametrize("hostile", [FORGED, "a\rb", "a\u2028b", "a\x85b", "tab\there", "nul\x00x", 'q"uote\\'])
def test_untrusted_values_never_break_a_log_line(hostile):
    line = _line(model=hostile, version=hostile, reason=hostile)
    assert len(line.splitlines()) == 1
    assert "\n" not in line and "\r" not in line and "\u2028" not in line and "\x85" not in line
    assert not any(ch < " " for ch in line)


def test_a_forged_line_stays_inside_its_quoted_value():
    line = _line(model=FORGED)
    assert 'model="evil\\nts=2026-01-01T00:00:00 level=error logger=modelserving.job event=\\"INJECTED LINE\\""' in line


def test_plain_values_stay_bare_and_unicode_stays_readable():
    assert "model=linear version=µ-1" in _line(model="linear", version="µ-1")


def test_a_misspelt_secret_setting_never_echoes_its_value(monkeypatch):
    """The defect: ``sasl_pasword`` (misspelt) echoed the password in the validation error."""
    secret = "s3cr3t-hunter2"
    monkeypatch.setenv("MODELSERVING_DEBUG", "1")
    with pytest.raises(ConfigError) as caught:
        KafkaSettings.load(sasl_pasword=secret)
    chain = [caught.value, caught.value.__cause__]
    assert "sasl_pasword" in str(caught.value)
    assert all(secret not in str(exc) and secret not in repr(exc) for exc in chain if exc is not None)


def test_job_settings_errors_do_not_echo_values_either():
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as caught:
        ServingOptions(early_records="password-123")
    assert "password-123" not in str(caught.value)
    with pytest.raises(ValidationError) as caught:
        JobSettings(state_backend="password-456")
    assert "password-456" not in str(caught.value)


def test_a_local_minicluster_serves_rest_on_loopback_only():
    from flink_jobs.environment import job_configuration

    local = job_configuration(JobSettings())
    assert local.get_string("rest.bind-address", "") == "127.0.0.1"
    chosen = job_configuration(JobSettings(rest_bind_address="0.0.0.0", rest_port=18099))
    assert chosen.get_string("rest.bind-address", "") == "0.0.0.0"
    assert chosen.get_string("rest.port", "") == "18099"
    # Under `flink run` the client's own REST address must stay as the CLI set it.
    remote = job_configuration(JobSettings(), local=False)
    assert remote.get_string("rest.bind-address", "unset") == "unset"
    assert remote.get_string("rest.port", "unset") == "unset"


def test_the_local_standalone_cluster_binds_rest_to_loopback(tmp_path):
    import yaml

    from serving.ops.cluster.config import ClusterOptions
    from serving.ops.cluster.local import LocalCluster

    conf_dir = LocalCluster(tmp_path / "state").configure(ClusterOptions())
    conf = yaml.safe_load((conf_dir / "config.yaml").read_text())
    assert conf["rest.bind-address"] == "127.0.0.1"
    other = LocalCluster(tmp_path / "other").configure(ClusterOptions(rest_bind_address="10.1.2.3"))
    assert yaml.safe_load((other / "config.yaml").read_text())["rest.bind-address"] == "10.1.2.3"


def test_a_dead_letter_cap_over_the_topics_limit_is_refused():
    from flink_jobs.main import check_limits

    check_limits(ServingOptions(), KafkaSettings())
    with pytest.raises(ConfigError, match="max_message_bytes"):
        check_limits(ServingOptions(dead_letter_max_payload_bytes=4 * 1024 * 1024), KafkaSettings())


def test_a_float32_model_refuses_values_it_cannot_hold():
    from serving.core.model import ModelType
    from serving.formats import descriptor_from_path, load_model
    from tests.conftest import TF_GRAPH

    model = load_model(descriptor_from_path(TF_GRAPH, ModelType.TENSORFLOW))
    try:
        assert model.input_dtype == np.float32
        rows = np.tile(np.asarray([7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]), (3, 1))
        rows[1, 0], rows[2, 5] = 1e308, -1e308
        assert model.unfit_rows(rows).tolist() == [False, True, True]
        with pytest.raises(InputRangeError, match="does not fit the float32 input"):
            model.score_batch(rows)
        assert len(model.score_batch(rows[:1])) == 1
    finally:
        model.close()


def test_a_bad_job_flag_is_one_line_without_its_value():
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "flink_jobs.main", "--parallelism", "0", "--bootstrap-servers", "127.0.0.1:1"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "flink_jobs.main: error: invalid job setting parallelism: Input should be greater than or equal to 1"
    ]


def test_sigterm_runs_the_same_clean_up_as_ctrl_c(tmp_path):
    import subprocess
    import sys

    marker = tmp_path / "cleaned"
    code = (
        "import os, signal, time\n"
        "from serving.ops.processes import interrupt_on_sigterm\n"
        "interrupt_on_sigterm()\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(10)\n"
        "except KeyboardInterrupt:\n"
        f"    open({str(marker)!r}, 'w').write('yes')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert marker.read_text() == "yes"
