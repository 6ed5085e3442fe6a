"""``publish model --type oip --location URL``: a remote model is described by its server, checked before sending."""

from __future__ import annotations

import subprocess
import sys

import pytest

from serving.errors import ConfigError, RemoteLocationError
from serving.formats.remote.oip import remote_descriptor


def test_a_remote_descriptor_names_its_server_and_a_stable_version():
    metadata = {"model_name": "diabetes", "feature_names": "age,bmi"}
    one = remote_descriptor("http://127.0.0.1:8080/", data_type="diabetes", metadata=metadata)
    two = remote_descriptor("http://127.0.0.1:8080", data_type="diabetes", metadata=metadata)
    assert (one.format, one.location, one.name, one.data_type) == (
        "oip",
        "http://127.0.0.1:8080",
        "diabetes",
        "diabetes",
    )
    assert one.version == two.version and len(one.version) == 12
    pinned = remote_descriptor(
        "http://localhost:9000", data_type="d", metadata={"model_name": "m", "model_version": "v7"}
    )
    assert pinned.version == "v7"
    with pytest.raises(RemoteLocationError, match="allow-list"):
        remote_descriptor("http://models.example.com", data_type="d", metadata={"model_name": "m"})
    with pytest.raises(ConfigError, match="model_name"):
        remote_descriptor("http://localhost:9000", data_type="d")


@pytest.mark.parametrize(
    "args, message",
    [
        (["--type", "oip", "model.onnx"], "takes --location URL and no PATH"),
        (["--type", "onnx", "--location", "http://127.0.0.1:1"], "takes a PATH"),
        (["--type", "oip", "--location", "http://models.example.com", "--name", "m"], "not on the allow-list"),
    ],
    ids=["oip-with-a-path", "file-with-a-location", "off-the-allow-list"],
)
def test_publish_errors_are_one_line_before_any_connection(args, message):
    # The broker address is unreachable: each error must come before any connection is tried.
    command = [sys.executable, "-m", "serving.cli", "publish", "model", *args, "--bootstrap-servers", "127.0.0.1:9"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
