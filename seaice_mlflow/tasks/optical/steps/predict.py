"""An optical predict run in MLflow ("optical_predict"): masks of new photos, as PixelAnnotationTool writes them.

Per photo ``<stem>_mask.png`` (R=G=B=label id) and ``<stem>_color_mask.png`` in ``--out``, which an
annotator can open in the tool to correct; ``class_fractions.json`` holds each photo's class
shares in percent (also logged). Several model URIs predict as their ensemble. A floe detector
writes per photo ``<stem>_floes.png`` (16-bit floe ids) and for all photos ``floe_sizes.json``
(each photo's floe-size distribution) and ``floe_sizes.csv`` (one row per floe), both logged. A
photo that cannot be read is reported and the others go on. A line per photo says its size and seconds
(a 10000 x 10000 px photo took 22 min on the 2-core CPU); on a terminal a bar counts its tile rows.
Photos whose products would share a name (``same.png`` and ``same.jpg``) are refused before any work.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import mlflow

from seaice_mlflow.core.errors import ParameterError, SeaIceError, looked_at
from seaice_mlflow.core.io import check_writable
from seaice_mlflow.core.lists import split_values
from seaice_mlflow.tasks.optical.config import OPTICAL_INFERENCE
from seaice_mlflow.tasks.optical.floes.products import FLOES_SUFFIX, write_floe_sizes, write_floes
from seaice_mlflow.tasks.optical.floes.pyfunc import FloeModel
from seaice_mlflow.tasks.optical.logged_models import load_optical_models
from seaice_mlflow.tasks.optical.masks import class_fractions, write_fractions, write_masks
from seaice_mlflow.tasks.optical.readers import IMAGE_EXTENSIONS, MASK_MARK, read_image
from seaice_mlflow.tracking.model_refs import model_tags
from seaice_mlflow.tracking.runs import model_label, plural, run_name, step_run

FRACTIONS = "class_fractions.json"


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
                            and MASK_MARK not in p.name and not p.name.endswith(FLOES_SUFFIX))  # fmt: skip
        elif path.is_file():
            files.append(path)
        else:
            raise ParameterError("images", f"{looked_at(path)} does not exist; give photo files or folders of photos")
    if not files:
        raise ParameterError("images", f"no photo ({', '.join(IMAGE_EXTENSIONS)}) in {', '.join(map(str, paths))}")
    return distinct_stems(files)


def distinct_stems(files: Sequence[Path]) -> list[Path]:
    """``files`` without repeats of one file, or an error naming two photos whose products would share a
    name (``<stem>_mask.png``): one stem, or stems differing only in case (one file on Windows and macOS)."""
    by_stem: dict[str, Path] = {}
    for path in files:
        other = by_stem.setdefault(path.stem.casefold(), path)
        if other.resolve() != path.resolve():
            raise ParameterError("images", f"{other} and {path} would both write {path.stem}{MASK_MARK} (or "
                                 f"{path.stem}{FLOES_SUFFIX}): products are named by the photo's name without its "
                                 "extension; rename one, or predict them into separate --out folders")  # fmt: skip
    return list(by_stem.values())


def predict(model_uris: str | Sequence[str], images: Sequence[str | Path], out: str | Path, device: str = "auto",
            tile: int = OPTICAL_INFERENCE.tile, overlap: int = OPTICAL_INFERENCE.overlap,
            echo: Callable[[str], None] = print) -> OpticalPredictRun:  # fmt: skip
    """Masks (or, for a floe detector, floe instances and sizes) of every photo in the active (or a
    new) run; several mask model URIs predict as their ensemble."""
    files = photo_files(images)
    target = check_writable(out, "out")
    uris = split_values(model_uris)
    model, refs = load_optical_models(uris, device, tile, overlap)
    floes = isinstance(model, FloeModel)
    params = {"model_uri": " ".join(uris), "images": " ".join(map(str, images)), "out": str(target),
              "device": device, "tile": tile, "overlap": overlap}  # fmt: skip
    name = run_name("optical_predict", model_label(uris), "on", plural(len(files), "photo"))
    with step_run("optical_predict", params, name=name, family="optical") as run:
        mlflow.set_tags({**model_tags(refs), "seaice.product": "floes" if floes else "masks"})
        written, failed, fractions, records = [], {}, {}, []
        for number, path in enumerate(files, start=1):
            started = time.perf_counter()
            try:
                rgb = read_image(path)
                found, scores = model.predict_photo(rgb, progress=True)
            except SeaIceError as err:
                failed[str(path)] = str(err)
                echo(f"failed {path}: {err}")
                continue
            if floes:
                records.append(write_floes(found, target, path.stem, scores, photo=path.name))
                written.append(records[-1].path)
                fractions[path.name] = len(records[-1].sizes)
            else:
                written += write_masks(found, model.recipe.table, target, path.stem)
                fractions[path.name] = class_fractions(found, model.recipe.table)
            echo(
                f"photo {number}/{len(files)} {path.name} ({rgb.shape[0]}x{rgb.shape[1]} px): "
                f"{time.perf_counter() - started:.1f} s, wrote {written[-1]}"
            )
        if not fractions:
            raise SeaIceError(f"no photo could be read ({len(failed)} failed); see the messages above")
        summary = write_floe_sizes(records, target) if floes else [write_fractions(fractions, target / FRACTIONS)]
        written += summary
        for path in summary:
            mlflow.log_artifact(str(path))
        mlflow.log_metrics({"photos": len(fractions), "photos_failed": len(failed),
                            **({"floes": sum(fractions.values())} if floes else {})})  # fmt: skip
        return OpticalPredictRun(run.info.run_id, written, failed)
