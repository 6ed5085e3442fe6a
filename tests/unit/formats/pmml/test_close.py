"""Closing one pypmml-served model must leave the process's JVM, and every other PMML model, alone."""

from __future__ import annotations

import os

import numpy as np

from serving.core.model import ModelType
from serving.formats import descriptor_from_path, load_model
from tests.support.reference import PMML_LINEAR, PMML_TREE


def _py4j_jvms() -> int:
    """JVMs this process started for pypmml (children running py4j.GatewayServer)."""
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as stat, open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                parent = int(stat.read().rsplit(")", 1)[1].split()[1])
                if parent == os.getpid() and b"py4j.GatewayServer" in cmdline.read():
                    count += 1
        except OSError:
            continue
    return count


def test_closing_one_model_leaves_the_others_serving_and_starts_no_new_jvm(wine_data, monkeypatch):
    monkeypatch.setenv("MODELSERVING_PMML_ENGINE", "pypmml")
    linear = load_model(descriptor_from_path(PMML_LINEAR, ModelType.PMML, version="1"))
    tree = load_model(descriptor_from_path(PMML_TREE, ModelType.PMML, version="1"))
    rows = wine_data.features[:20]
    expected = tree.score_batch(rows).scores
    jvms = _py4j_jvms()
    assert jvms >= 1
    linear.close()
    np.testing.assert_array_equal(tree.score_batch(rows).scores, expected)
    again = load_model(descriptor_from_path(PMML_LINEAR, ModelType.PMML, version="2"))
    assert np.isfinite(again.score_batch(rows).scores).all()
    assert _py4j_jvms() == jvms
    tree.close()
    again.close()
