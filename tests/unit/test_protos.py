"""The generated protobuf code is in sync with protos/*.proto and the pinned runtime."""

from __future__ import annotations

import os
import subprocess
import sys

import google.protobuf

from tests.support.reference import PROJECT_ROOT

PB_DIR = PROJECT_ROOT / "serving" / "pb"


def test_generated_code_matches_the_proto_files(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    subprocess.run([str(PROJECT_ROOT / "scripts" / "gen-protos.sh"), str(tmp_path)], check=True, env=env)
    fresh = sorted(p.name for p in tmp_path.glob("*_pb2.py*"))
    assert fresh == sorted(p.name for p in PB_DIR.glob("*_pb2.py*")), "run `make proto`"
    for name in fresh:
        assert (tmp_path / name).read_text() == (PB_DIR / name).read_text(), f"{name} is stale: run `make proto`"


def test_generated_code_targets_the_installed_runtime():
    # protoc stamps the gencode version; the runtime must be the same major and not older.
    text = (PB_DIR / "model_descriptor_pb2.py").read_text()
    line = next(li for li in text.splitlines() if "Protobuf Python Version:" in li)
    gencode = tuple(int(x) for x in line.split(":")[1].strip().split(".")[:2])
    runtime = tuple(int(x) for x in google.protobuf.__version__.split(".")[:2])
    assert gencode[0] == runtime[0] and gencode <= runtime, (gencode, runtime)
