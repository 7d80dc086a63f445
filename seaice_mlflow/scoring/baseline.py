"""The per-pixel baseline a CNN must beat: gradient boosting on each pixel's own input channels.

No neighbourhood, no texture, no context: what the synthetic scenes' design says spatial context
adds is the gap between this and a CNN on the same test scenes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from seaice_mlflow.charts import CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.data.scene import Scene
from seaice_mlflow.data.variables import SCENE_VARIABLES
from seaice_mlflow.scoring.metrics import ScoreBoard, Scores


def pixel_table(scenes: Sequence[Scene], rng: np.random.Generator,
                n_pixels: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random SAR-valid pixels of the scenes: inputs (n, 24) and charts (n,) per chart."""
    per_scene = n_pixels // len(scenes)
    xs, ys = [], {c: [] for c in CHART_NAMES}
    for scene in scenes:
        valid = np.flatnonzero(scene.sar_valid.ravel())
        pick = rng.choice(valid, size=min(per_scene, valid.size), replace=False)
        stack = scene.inputs(SCENE_VARIABLES).reshape(len(SCENE_VARIABLES), -1)
        xs.append(stack[:, pick].T)
        for chart in CHART_NAMES:
            ys[chart].append(scene.charts[chart].ravel()[pick])
    return np.concatenate(xs), {c: np.concatenate(v) for c, v in ys.items()}


def per_pixel_baseline(train: Sequence[Scene], test: Sequence[Scene], n_pixels: int = 300_000,
                       seed: int = 0) -> Scores:
    """Official scores on ``test`` of per-pixel gradient boosting trained on ``train``.

    SIC is regressed on the class index (rounded, clamped), SOD and FLOE classified.
    """
    x, y = pixel_table(train, np.random.default_rng(seed), n_pixels)
    models = {}
    for chart in CHART_NAMES:
        keep = y[chart] != IGNORE_INDEX
        model = (HistGradientBoostingRegressor if chart == "SIC" else HistGradientBoostingClassifier)(
            max_iter=200, random_state=seed)
        models[chart] = model.fit(x[keep], y[chart][keep])
    board = ScoreBoard()
    for scene in test:
        stack = scene.inputs(SCENE_VARIABLES).reshape(len(SCENE_VARIABLES), -1).T
        prediction = {}
        for chart, model in models.items():
            out = model.predict(stack)
            if chart == "SIC":
                out = np.clip(np.rint(out), 0, CHARTS["SIC"].n_classes - 1)
            prediction[chart] = out.astype(np.uint8).reshape(scene.shape)
        board.add(scene.scene_id, scene.charts, prediction)
    return board.pooled()
