"""An optical evaluate run in MLflow ("optical_evaluate"): a model's scores on labelled photos.

Metrics (percent): ``test_miou`` (mean IoU over the classes present, scikit-learn's macro
Jaccard), ``test_miou_without_background`` (sky and background left out), ``test_pixel_accuracy``
and per class ``test_iou_<class>`` and ``test_f1_<class>``; artifacts ``scores.json``,
``confusion.json`` (class indices, reference rows) and an overlay quicklook per photo.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import mlflow

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.optical import plots
from seaice_mlflow.tasks.optical.masks import PhotoScores, load_photo_model, score_photos
from seaice_mlflow.tasks.optical.readers import MaskKind, open_folder, read_pair
from seaice_mlflow.tracking.runs import MODEL_URI_TAG, step_run


@dataclass
class OpticalEvaluateRun:
    run_id: str
    scores: PhotoScores


def evaluate(model_uri: str, data_dir: str | Path, classes: str = "", masks: MaskKind = "auto",
             device: str = "auto", tile: int = 512) -> OpticalEvaluateRun:  # fmt: skip
    """Score the model on every labelled photo of ``data_dir`` (all splits) in the active (or a new) run."""
    folder = open_folder(data_dir, classes=classes or None, masks=masks)
    photos = [p for p in folder.photos if p.label is not None]
    if not photos:
        raise ParameterError("data_dir", f"{data_dir} holds no labelled photo; check it with `seaice optical inspect`")
    model = load_photo_model(model_uri, device, tile)
    own = model.recipe.table
    if (own.names, own.ids) != (folder.table.names, folder.table.ids):
        raise ParameterError("data_dir", f"the classes of {folder.table.describe()} are not the model's "
                             f"({', '.join(own.names)}); give the model's class table with --classes")  # fmt: skip
    params = {"model_uri": model_uri, "data_dir": str(Path(data_dir).resolve()), "classes": classes, "masks": masks,
              "device": device, "tile": tile}  # fmt: skip
    lookup = folder.table.index_lookup()
    with step_run("optical_evaluate", params) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tag(MODEL_URI_TAG, model_uri)
        pairs = []
        for photo in photos:
            rgb, reference = read_pair(photo, folder.table)
            ids, _ = model.predict_photo(rgb)
            predicted = lookup[ids]
            pairs.append((reference, predicted))
            plots.save(plots.overlay(rgb, ids, reference, folder.table, photo.stem), Path(tmp) / f"{photo.stem}.png")
        scores = score_photos(pairs, folder.table)
        mlflow.log_metrics({**scores.metrics("test"), "eval_photos": len(photos)})
        (Path(tmp) / "scores.json").write_text(json.dumps(scores.as_dict(), indent=1))
        (Path(tmp) / "confusion.json").write_text(json.dumps({"classes": list(folder.table.names),
                                                              "counts": scores.confusion.tolist()}))  # fmt: skip
        mlflow.log_artifacts(tmp, "evaluation")
        return OpticalEvaluateRun(run.info.run_id, scores)
