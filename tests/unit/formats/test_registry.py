"""Model formats are plug-ins: a module and an entry point, nothing else."""

from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest

from serving.core.model import ModelDescriptor
from serving.errors import UnknownModelType
from serving.formats import descriptor_from_path, load_model, parse_descriptor, registry

PLUGIN = '''
"""A throwaway format: the model file holds one number, the score is each row's sum times it."""

import numpy as np

from serving.core.model import Model, RawPrediction


class ScaledSumModel(Model):
    format_name = "scaledsum"
    suffixes = (".scaledsum",)

    def __init__(self, descriptor, artifact):
        super().__init__(descriptor, artifact)
        self.factor = float(artifact.decode())

    def _predict(self, features):
        return RawPrediction(scores=features.sum(axis=1) * self.factor)
'''


@pytest.fixture
def plugin_on_path(tmp_path, monkeypatch):
    """A package installed only as files on sys.path: its module and its dist-info with the entry point."""
    (tmp_path / "scaledsum_format.py").write_text(textwrap.dedent(PLUGIN))
    dist = tmp_path / "scaledsum_format-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: scaledsum-format\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[modelserving.formats]\nscaledsum = scaledsum_format:ScaledSumModel\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    registry.refresh()
    yield tmp_path
    sys.modules.pop("scaledsum_format", None)
    monkeypatch.undo()
    registry.refresh()


def test_a_format_registered_by_entry_point_scores_without_touching_another_module(plugin_on_path):
    model_file = plugin_on_path / "double.scaledsum"
    model_file.write_text("2.0")
    assert "scaledsum" in registry.format_names()
    assert registry.detect_format(model_file) == "scaledsum"
    descriptor = descriptor_from_path(model_file, "scaledsum", version="1", metadata={"feature_names": "a,b"})
    assert (descriptor.format, descriptor.model_type) == ("scaledsum", 0)
    published = parse_descriptor(descriptor.SerializeToString())
    model = load_model(published)
    scores = model.score_batch(np.asarray([[1.0, 2.0], [3.0, 4.0]]))
    assert scores.scores.tolist() == [6.0, 14.0]
    assert model.type_name == "scaledsum"


def test_an_unknown_format_by_name_is_a_typed_error_naming_the_known_ones():
    with pytest.raises(UnknownModelType, match=r"'xgboost'.*onnx, pmml, tensorflow, tensorflow_saved"):
        registry.parse_format("xgboost")
    unknown = ModelDescriptor(name="m", version="1", data_type="wine", format="xgboost", data=b"x")
    with pytest.raises(UnknownModelType, match="onnx, pmml, tensorflow"):
        parse_descriptor(unknown.SerializeToString())


def test_the_built_in_formats_are_entry_points_and_listing_them_loads_no_framework():
    import subprocess

    code = (
        "import sys; from serving.formats import registry; names = registry.format_names(); "
        "[registry.format_class(n) for n in names]; "
        "print(names, any(m in sys.modules for m in ('tensorflow', 'onnxruntime', 'pypmml', 'httpx')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['ensemble', 'oip', 'onnx', 'pmml', 'tensorflow', 'tensorflow_saved'] False"


def test_generic_code_names_no_record_type():
    """The domain, the formats and the Flink functions reach records only through serving.records."""
    import subprocess

    code = (
        "import sys, serving.core.scoring, serving.core.admission, serving.core.stats, serving.formats, "
        "serving.formats.common, serving.codecs.outputs, serving.observability.monitor, "
        "serving.kafka.providers.models, flink_jobs.jobs; print('serving.records.wine' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
