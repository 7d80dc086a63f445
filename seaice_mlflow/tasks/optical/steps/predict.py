"""An optical predict run in MLflow ("optical_predict"): masks of new photos, as PixelAnnotationTool writes them.

Per photo ``<stem>_mask.png`` (R=G=B=label id) and ``<stem>_color_mask.png`` in ``--out``, which an
annotator can open in the tool to correct; ``class_fractions.json`` holds each photo's class
shares in percent (also logged). A photo that cannot be read is reported and the others go on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.io import check_writable
from seaice_mlflow.tasks.optical.masks import class_fractions, load_photo_model, write_fractions, write_masks
from seaice_mlflow.tasks.optical.readers import IMAGE_EXTENSIONS, read_image
from seaice_mlflow.tracking.runs import MODEL_URI_TAG, step_run


@dataclass
class OpticalPredictRun:
    run_id: str
    written: list[Path]
    failed: dict[str, str] = field(default_factory=dict)  # photo -> problem


def photo_files(paths: Sequence[str | Path]) -> list[Path]:
    """The photos named or inside the folders named (label files, ``*_mask.png``, left out)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS
                            and "_mask.png" not in p.name)  # fmt: skip
        elif path.is_file():
            files.append(path)
        else:
            raise ParameterError("images", f"{path} does not exist; give photo files or folders of photos")
    if not files:
        raise ParameterError("images", f"no photo ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, paths))}")
    return files


def predict(model_uri: str, images: Sequence[str | Path], out: str | Path, device: str = "auto", tile: int = 512,
            echo: Callable[[str], None] = print) -> OpticalPredictRun:  # fmt: skip
    """Masks of every photo in the active (or a new) run."""
    files = photo_files(images)
    target = check_writable(out, "out")
    model = load_photo_model(model_uri, device, tile)
    table = model.recipe.table
    params = {"model_uri": model_uri, "images": " ".join(map(str, images)), "out": str(target), "device": device,
              "tile": tile}  # fmt: skip
    with step_run("optical_predict", params) as run:
        mlflow.set_tag(MODEL_URI_TAG, model_uri)
        written, failed, fractions = [], {}, {}
        for path in files:
            try:
                ids, _ = model.predict_photo(read_image(path))
            except SeaIceError as err:
                failed[str(path)] = str(err)
                echo(f"failed {path}: {err}")
                continue
            written += write_masks(ids, table, target, path.stem)
            fractions[path.name] = class_fractions(ids, table)
            echo(f"wrote {target / (path.stem + '_mask.png')}")
        if not fractions:
            raise SeaIceError(f"no photo could be read ({len(failed)} failed); see the messages above")
        written.append(write_fractions(fractions, target / "class_fractions.json"))
        mlflow.log_artifact(str(written[-1]))
        mlflow.log_metrics({"photos": len(fractions), "photos_failed": len(failed)})
        return OpticalPredictRun(run.info.run_id, written, failed)
