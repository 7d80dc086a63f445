"""A model logged before the task seam (commit bc59fb3) still loads and charts the same.

``tests/fixtures/model_bc59fb3`` is that model as MLflow downloaded it (a U-Net 8,8,16,16 trained
for two batches by ``tests/tiny_model.train_tiny_model``), ``model_bc59fb3_expected.npz`` its output
for the input below, computed by the code of that commit. The package is imported first, as
``seaice predict`` does, so the model runs on today's code, not on the copy logged with it.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import mlflow
import numpy as np

import seaice_mlflow

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MODEL = FIXTURES / "model_bc59fb3"
EXPECTED = FIXTURES / "model_bc59fb3_expected.npz"


def legacy_input() -> np.ndarray:
    return (np.random.default_rng(0).standard_normal((1, 29, 40, 56)) * 3).astype(np.float32)


def test_a_model_logged_before_the_seam_loads_and_charts_the_same():
    model = mlflow.pyfunc.load_model(
        str(MODEL), model_config={"device": "cpu", "tile": 64, "overlap": 16, "probabilities": True}
    )
    source = Path(inspect.getfile(type(model.unwrap_python_model()))).resolve()
    assert source.is_relative_to(Path(seaice_mlflow.__file__).resolve().parent), source
    out = model.predict(legacy_input())
    with np.load(EXPECTED) as expected:
        assert sorted(out) == sorted(expected.files)
        for name in expected.files:
            if name.endswith("_scores"):
                np.testing.assert_allclose(out[name], expected[name], atol=1e-5, err_msg=name)
            else:
                np.testing.assert_array_equal(out[name], expected[name], err_msg=name)
                assert out[name].dtype == np.uint8
