"""Settings errors name the setting, never its value."""

from __future__ import annotations

import pytest

from serving.errors import ConfigError
from serving.kafka.settings import KafkaSettings
from serving.settings import JobSettings, ServingOptions


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
