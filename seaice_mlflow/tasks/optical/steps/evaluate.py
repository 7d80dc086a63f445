"""An optical evaluate run in MLflow ("optical_evaluate"): a model's scores on labelled photos.

Metrics (percent): ``test_miou`` (mean IoU over the classes present, scikit-learn's macro
Jaccard), also as ``test_combined`` (the score ``seaice register`` ranks by, as for the SAR
charts), ``test_miou_without_background`` (sky and background left out), ``test_pixel_accuracy``
and per class ``test_iou_<class>`` and ``test_f1_<class>``; artifacts ``scores.json``,
``confusion.json`` (class indices, reference rows) and an overlay quicklook per photo. Several
model URIs score their ensemble (probabilities averaged). A floe detector is scored on the floes
of the labels (the regions of its floe classes): ``test_floe_f1`` (also ``test_combined``),
``test_floe_precision``, ``test_floe_recall`` and ``test_floe_matched_iou``, matched at mask IoU
0.5 (:mod:`~seaice_mlflow.tasks.optical.floes.scores`), with ``floes_per_photo.json``. Photos a model was trained or
validated on (its recipe holds their fingerprints) are scored with a warning, and the run is
tagged so that ``seaice register`` does not rank by it.
"""

from __future__ import annotations

import json
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.core.lists import split_values
from seaice_mlflow.tasks.optical import plots
from seaice_mlflow.tasks.optical.config import OPTICAL_INFERENCE
from seaice_mlflow.tasks.optical.floes.pyfunc import FloeModel
from seaice_mlflow.tasks.optical.floes.scores import FloeScores, score_floe_photos
from seaice_mlflow.tasks.optical.logged_models import load_optical_models
from seaice_mlflow.tasks.optical.masks import PhotoScores, score_photos
from seaice_mlflow.tasks.optical.readers import MaskKind, open_folder, read_pair
from seaice_mlflow.tracking.model_refs import ModelRef, log_test_metrics, model_tags, seen_among, tag_seen
from seaice_mlflow.tracking.runs import model_label, plural, run_name, step_run


@dataclass
class OpticalEvaluateRun:
    run_id: str
    scores: PhotoScores | FloeScores  # a floe detector's: floe F1, precision, recall
    models: list[ModelRef] = field(default_factory=list)


def evaluate(model_uris: str | Sequence[str], data_dir: str | Path, classes: str = "", masks: MaskKind = "auto",
             device: str = OPTICAL_INFERENCE.device, tile: int = OPTICAL_INFERENCE.tile,
             overlap: int = OPTICAL_INFERENCE.overlap,
             warn: Callable[[str], None] | None = None) -> OpticalEvaluateRun:  # fmt: skip
    """Score the model (or the ensemble of several) on every labelled photo of ``data_dir`` (all
    splits) in the active (or a new) run; ``warn`` gets one-line warnings (default: :func:`warnings.warn`)."""
    folder = open_folder(data_dir, classes=classes or None, masks=masks)
    photos = [p for p in folder.photos if p.label is not None]
    if not photos:
        raise ParameterError("data_dir", f"{data_dir} holds no labelled photo; check it with `seaice optical inspect`")
    uris = split_values(model_uris)
    model, refs = load_optical_models(uris, device, tile, overlap)
    own = model.recipe.table
    if (own.names, own.ids) != (folder.table.names, folder.table.ids):
        raise ParameterError("data_dir", f"the classes of {folder.table.describe()} are not the model's "
                             f"({', '.join(own.names)}); give the model's class table with --classes")  # fmt: skip
    params = {"model_uri": " ".join(uris), "data_dir": str(Path(data_dir).resolve()), "classes": classes,
              "masks": masks, "device": device, "tile": tile, "overlap": overlap}  # fmt: skip
    lookup = folder.table.index_lookup()
    name = run_name("optical_evaluate", model_label(uris), "on", plural(len(photos), "photo"))
    with step_run("optical_evaluate", params, name=name, family="optical") as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tags(model_tags(refs))
        names = {p.digest(): p.image.name for p in photos}
        seen = [names[digest] for digest in seen_among(refs, names)]
        tag_seen(seen, len(photos), "photo", warn or (lambda line: warnings.warn(line, stacklevel=3)))
        if isinstance(model, FloeModel):
            board = score_floe_photos(photos, folder.table, model.recipe.floe_classes, model.recipe.min_floe_pixels,
                                      lambda rgb: model.predict_photo(rgb)[0])  # fmt: skip
            scores: PhotoScores | FloeScores = board.pooled()
            per_photo = {stem: {"reference": m.reference, "predicted": m.predicted, "matched": m.matched}
                         for stem, m in board.photos.items()}  # fmt: skip
            (Path(tmp) / "floes_per_photo.json").write_text(json.dumps(per_photo, indent=1))
            log_test_metrics(scores.metrics("test"), refs)
        else:
            pairs = []
            for photo in photos:
                rgb, reference = read_pair(photo, folder.table)
                ids, _ = model.predict_photo(rgb, progress=True)  # a bar of tile rows on a terminal
                pairs.append((reference, lookup[ids]))
                plots.save(plots.overlay(rgb, ids, reference, folder.table, photo.stem),
                           Path(tmp) / f"{photo.stem}.png")  # fmt: skip
            scores = score_photos(pairs, folder.table)
            (Path(tmp) / "confusion.json").write_text(json.dumps({"classes": list(folder.table.names),
                                                                  "counts": scores.confusion.tolist()}))  # fmt: skip
            log_test_metrics({**scores.metrics("test"), "test_combined": scores.miou}, refs)
        mlflow.log_metric("eval_photos", len(photos))
        (Path(tmp) / "scores.json").write_text(json.dumps(scores.as_dict(), indent=1))
        mlflow.log_artifacts(tmp, "evaluation")
        return OpticalEvaluateRun(run.info.run_id, scores, refs)
