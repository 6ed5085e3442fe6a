"""KafkaSettings: precedence flags > env > TOML file > defaults, secrets kept secret, client configs."""

from __future__ import annotations

import argparse
import os
import socket

import pytest

from serving.cli import build_parser
from serving.cli.kafka import kafka_settings_from_args
from serving.cli.publish import parse_duration
from serving.errors import ConfigError
from serving.kafka.settings import CONFIG_ENV, KafkaSettings

SECRET = "s3cr3t-Pa55"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    """No MODELSERVING_KAFKA_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("MODELSERVING_KAFKA_"):
            monkeypatch.delenv(name)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "kafka.toml"
    path.write_text(
        "[kafka]\n"
        'bootstrap_servers = "file-host:9092"\n'
        'group_id = "file-group"\n'
        'security_protocol = "SASL_SSL"\n'
        'sasl_mechanism = "SCRAM-SHA-512"\n'
        'sasl_username = "file-user"\n'
        f'sasl_password = "{SECRET}"\n'
        "partitions = 4\n"
        "[kafka.topics]\n"
        'models = "file-models"\n'
        'results = "file-results"\n'
    )
    return path


def test_defaults():
    settings = KafkaSettings.load()
    assert settings.bootstrap_servers == "127.0.0.1:9092"
    assert settings.security_protocol == "PLAINTEXT"
    assert settings.group_id == "modelserving"
    assert settings.topics.data == "wine-data" and settings.topics.models == "models"
    assert settings.sasl_password is None


def test_file_overrides_defaults(config_file):
    settings = KafkaSettings.load(config_file)
    assert settings.bootstrap_servers == "file-host:9092"
    assert settings.partitions == 4
    assert settings.topics.models == "file-models"
    assert settings.topics.data == "wine-data"  # not in the file: default
    assert settings.sasl_password.get_secret_value() == SECRET


def test_config_file_from_environment(config_file, monkeypatch):
    monkeypatch.setenv(CONFIG_ENV, str(config_file))
    assert KafkaSettings.load().group_id == "file-group"


def test_env_overrides_file(config_file, monkeypatch):
    monkeypatch.setenv("MODELSERVING_KAFKA_GROUP_ID", "env-group")
    monkeypatch.setenv("MODELSERVING_KAFKA_PARTITIONS", "3")
    monkeypatch.setenv("MODELSERVING_KAFKA_TOPICS__DATA", "env-data")
    settings = KafkaSettings.load(config_file)
    assert settings.group_id == "env-group"
    assert settings.partitions == 3
    assert settings.bootstrap_servers == "file-host:9092"  # the env does not set it
    # Nested tables merge key by key: the env's topic joins the file's, it does not replace them.
    assert settings.topics.data == "env-data"
    assert settings.topics.models == "file-models"
    assert settings.topics.results == "file-results"


def test_flags_override_env_and_file(config_file, monkeypatch):
    monkeypatch.setenv("MODELSERVING_KAFKA_GROUP_ID", "env-group")
    monkeypatch.setenv("MODELSERVING_KAFKA_BOOTSTRAP_SERVERS", "env-host:9092")
    settings = KafkaSettings.load(
        config_file, bootstrap_servers="flag-host:1", group_id="flag-group", sasl_username=None
    )
    assert settings.bootstrap_servers == "flag-host:1"
    assert settings.group_id == "flag-group"
    assert settings.sasl_username == "file-user"  # a None flag is "not given"


def test_password_from_env(monkeypatch):
    monkeypatch.setenv("MODELSERVING_KAFKA_SASL_PASSWORD", SECRET)
    settings = KafkaSettings.load(sasl_mechanism="PLAIN", sasl_username="u", security_protocol="SASL_PLAINTEXT")
    assert settings.sasl_password.get_secret_value() == SECRET


def test_secrets_never_printed(config_file, monkeypatch):
    monkeypatch.setenv("MODELSERVING_KAFKA_SSL_TRUSTSTORE_PASSWORD", SECRET + "-trust")
    settings = KafkaSettings.load(config_file)
    for text in (repr(settings), str(settings), settings.describe(), repr(settings.sasl_password)):
        assert SECRET not in text
    assert "file-host:9092" in settings.describe()


def test_bad_value_error_does_not_echo_a_secret(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(f'[kafka]\nsasl_password = "{SECRET}"\npartitions = 0\n')
    with pytest.raises(ConfigError) as info:
        KafkaSettings.load(path)
    assert "partitions" in str(info.value) and SECRET not in str(info.value)


def test_java_properties_for_sasl(config_file):
    props = KafkaSettings.load(config_file).java_properties()
    assert props["bootstrap.servers"] == "file-host:9092"
    assert props["security.protocol"] == "SASL_SSL"
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"
    assert props["sasl.jaas.config"] == (
        f'org.apache.kafka.common.security.scram.ScramLoginModule required username="file-user" password="{SECRET}";'
    )


def test_java_properties_plain_and_extra():
    settings = KafkaSettings.load(
        sasl_mechanism="PLAIN", sasl_username="u", extra={"ssl.endpoint.identification.algorithm": ""}
    )
    props = settings.java_properties()
    assert props["sasl.jaas.config"].startswith("org.apache.kafka.common.security.plain.PlainLoginModule required")
    assert props["ssl.endpoint.identification.algorithm"] == ""


def test_librdkafka_config_for_sasl(config_file):
    conf = KafkaSettings.load(config_file).librdkafka_config()
    assert conf == {
        "bootstrap.servers": "file-host:9092",
        "security.protocol": "sasl_ssl",
        "sasl.mechanisms": "SCRAM-SHA-512",
        "sasl.username": "file-user",
        "sasl.password": SECRET,
    }


def test_plaintext_has_no_sasl_keys():
    conf = KafkaSettings.load().librdkafka_config()
    assert not any(key.startswith("sasl.") for key in conf)
    assert "sasl.mechanism" not in KafkaSettings.load().java_properties()


@pytest.mark.parametrize(
    "overrides",
    [
        {"security_protocol": "PLAIN_TEXT"},
        {"sasl_mechanism": "GSSAPI"},
        {"partitions": 0},
        {"transaction_timeout_ms": 10},
        {"inline_model_max_bytes": 0},
        {"no_such_setting": 1},
    ],
    ids=["protocol", "mechanism", "partitions", "txn-timeout", "inline-max", "unknown"],
)
def test_bad_values_are_config_errors(overrides):
    with pytest.raises(ConfigError, match="invalid Kafka setting"):
        KafkaSettings.load(**overrides)


def test_bad_env_value_is_config_error(monkeypatch):
    monkeypatch.setenv("MODELSERVING_KAFKA_SECURITY_PROTOCOL", "bogus")
    with pytest.raises(ConfigError, match="security_protocol"):
        KafkaSettings.load()


@pytest.mark.parametrize("content", ["[kafka\n", '[kafka]\nno_such_setting = "x"\n'], ids=["syntax", "unknown-key"])
def test_bad_file_is_config_error(tmp_path, content):
    path = tmp_path / "k.toml"
    path.write_text(content)
    with pytest.raises(ConfigError):
        KafkaSettings.load(path)


def test_missing_file_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read Kafka config"):
        KafkaSettings.load(tmp_path / "missing.toml")


# --------------------------------------------------------------------------- the CLI's Kafka flags


def _args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["publish", "data", "--rate", "0", *argv])


def test_cli_flags_override_file_and_env(config_file, monkeypatch, tmp_path):
    monkeypatch.setenv("MODELSERVING_KAFKA_GROUP_ID", "env-group")
    monkeypatch.setenv("MODELSERVING_KAFKA_SASL_PASSWORD", "env-secret")
    args = _args(
        "--kafka-config",
        str(config_file),
        "--bootstrap-servers",
        "flag-host:9",
        "--security-protocol",
        "sasl_plaintext",  # any case
        "--sasl-mechanism",
        "plain",
        "--sasl-username",
        "flag-user",
    )
    settings = kafka_settings_from_args(args)
    assert settings.bootstrap_servers == "flag-host:9"
    assert settings.security_protocol == "SASL_PLAINTEXT"
    assert settings.sasl_mechanism == "PLAIN"
    assert settings.sasl_username == "flag-user"
    assert settings.group_id == "env-group"
    assert settings.sasl_password.get_secret_value() == "env-secret"
    assert kafka_settings_from_args(_args("--group-id", "flag-group")).group_id == "flag-group"


def test_cli_has_no_password_flag(capsys):
    with pytest.raises(SystemExit) as info:
        _args("--sasl-password", "oops")
    assert info.value.code == 2


def test_cli_uses_running_local_broker_when_no_bootstrap_is_set(tmp_path, monkeypatch):
    # A stand-in for a running local broker: a live pid and a port that accepts connections.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        address = f"127.0.0.1:{listener.getsockname()[1]}"
        (tmp_path / "broker.pid").write_text(str(os.getpid()))
        (tmp_path / "bootstrap").write_text(address)
        args = build_parser().parse_args(["kafka", "topics", "--state-dir", str(tmp_path)])
        assert kafka_settings_from_args(args).bootstrap_servers == address
        # Any explicit setting wins over the local broker.
        args = build_parser().parse_args(
            ["kafka", "topics", "--state-dir", str(tmp_path), "--bootstrap-servers", "x:1"]
        )
        assert kafka_settings_from_args(args).bootstrap_servers == "x:1"
        monkeypatch.setenv("MODELSERVING_KAFKA_BOOTSTRAP_SERVERS", "env-host:2")
        args = build_parser().parse_args(["kafka", "topics", "--state-dir", str(tmp_path)])
        assert kafka_settings_from_args(args).bootstrap_servers == "env-host:2"


def test_cli_keeps_default_bootstrap_without_local_broker(tmp_path):
    args = build_parser().parse_args(["kafka", "topics", "--state-dir", str(tmp_path / "none")])
    assert kafka_settings_from_args(args).bootstrap_servers == "127.0.0.1:9092"


@pytest.mark.parametrize(
    ("text", "seconds"), [("60s", 60.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0), ("1.5", 1.5), ("0", 0.0)]
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "-1s", "10 sec", "1d", "abc"])
def test_parse_duration_rejects(text):
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration(text)
