"""The per-pixel baseline a CNN must beat: gradient boosting on each pixel's own input channels.

No neighbourhood, no texture, no context: what the synthetic scenes' design says spatial context
adds is the gap between this and a CNN on the same test scenes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

from seaice_mlflow.core.metrics import ScoreBoard, Scores
from seaice_mlflow.tasks.autoice.charts import AUTOICE, CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import SCENE_VARIABLES


def pixel_table(
    scene_files: Sequence[str | Path], rng: np.random.Generator, n_pixels: int
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Random SAR-valid pixels of the scenes (read one at a time): inputs (n, 24) and charts (n,)
    per chart, about ``n_pixels`` in all, the same number from each scene."""
    per_scene = n_pixels // len(scene_files)
    xs, ys = [], {c: [] for c in CHART_NAMES}
    for path in scene_files:
        scene = read_scene(path)
        valid = np.flatnonzero(scene.sar_valid.ravel())
        pick = rng.choice(valid, size=min(per_scene, valid.size), replace=False)
        stack = scene.inputs(SCENE_VARIABLES).reshape(len(SCENE_VARIABLES), -1)
        xs.append(stack[:, pick].T)
        for chart in CHART_NAMES:
            ys[chart].append(scene.charts[chart].ravel()[pick])
    return np.concatenate(xs), {c: np.concatenate(v) for c, v in ys.items()}


def per_pixel_baseline(
    train_files: Sequence[str | Path], test_files: Sequence[str | Path], n_pixels: int = 300_000, seed: int = 0
) -> Scores:
    """Official scores on the test scene files of per-pixel gradient boosting trained on the
    training scene files (with charts; test files with their references).

    SIC is regressed on the class index (rounded, clamped), SOD and FLOE classified. Scenes are
    read one at a time, and each chart is predicted only where its reference counts in the score
    (the other pixels are left at 255, which the score ignores): boosting's prediction is the
    slow part.
    """
    x, y = pixel_table(train_files, np.random.default_rng(seed), n_pixels)
    models = {}
    for chart in CHART_NAMES:
        keep = y[chart] != IGNORE_INDEX
        model = (HistGradientBoostingRegressor if chart == "SIC" else HistGradientBoostingClassifier)(
            max_iter=200, random_state=seed
        )
        models[chart] = model.fit(x[keep], y[chart][keep])
    board = ScoreBoard(AUTOICE)
    for path in test_files:
        scene = read_scene(path)
        stack = scene.inputs(SCENE_VARIABLES).reshape(len(SCENE_VARIABLES), -1)
        prediction = {}
        for chart, model in models.items():
            scored = np.flatnonzero(scene.charts[chart].ravel() != IGNORE_INDEX)
            out = np.full(scene.shape[0] * scene.shape[1], IGNORE_INDEX, np.uint8)
            if scored.size:
                values = model.predict(stack[:, scored].T)
                if chart == "SIC":
                    values = np.clip(np.rint(values), 0, CHARTS["SIC"].n_classes - 1)
                out[scored] = values.astype(np.uint8)
            prediction[chart] = out.reshape(scene.shape)
        board.add(scene.scene_id, scene.charts, prediction)
    return board.pooled()
