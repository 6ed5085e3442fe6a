"""Write the iris example: iris.csv (a header row naming the schema's fields) and iris-lr.onnx.

Usage: .venv/bin/python scripts/iris_example.py OUT_DIR

The data is scikit-learn's copy of the UCI iris set (no download). The model
is a scikit-learn logistic regression exported with skl2onnx; it names its
inputs with ``feature_names`` in the order it was trained on, so it is bound
to ``docs/examples/iris.avsc`` by name. See README, "Any data type".
"""

from __future__ import annotations

import sys
from pathlib import Path

FIELDS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def main(out: Path) -> None:
    """Write OUT/iris.csv and OUT/iris-lr.onnx."""
    import numpy as np
    import onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    out.mkdir(parents=True, exist_ok=True)
    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=dict(zip(iris.feature_names, FIELDS)))
    frame["species"] = np.asarray(iris.target_names)[iris.target]
    frame[[*FIELDS, "species"]].to_csv(out / "iris.csv", index=False)
    model = LogisticRegression(max_iter=1000).fit(frame[FIELDS].to_numpy(), frame["species"])
    exported = convert_sklearn(model, initial_types=[("input", FloatTensorType([None, 4]))], target_opset=17)
    onnx.helper.set_model_props(exported, {"feature_names": ",".join(FIELDS)})
    (out / "iris-lr.onnx").write_bytes(exported.SerializeToString())
    print(f"wrote {out / 'iris.csv'} ({len(frame)} rows) and {out / 'iris-lr.onnx'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: iris_example.py OUT_DIR")
    main(Path(sys.argv[1]))
