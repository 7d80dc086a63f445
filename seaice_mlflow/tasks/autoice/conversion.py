"""``seaice preprocess``: a folder of AI4Arctic scenes -> the chunked training store.

Everything that can be checked without converting is checked first (:func:`plan_preprocess`:
options, a writable ``--out``, validation split sizes against the training scenes the file names
promise). Scenes are then converted in parallel worker processes, each written atomically; a
re-run skips scenes already in the store with the same source checksum and parameters; a bad
scene is reported and skipped while the others land. The manifest is written last, and only when
the converted scenes make a usable store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from seaice_mlflow import __version__
from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.core.io import check_writable, remove
from seaice_mlflow.tasks.autoice.files.naming import (
    PREP,
    find_scene_files,
    parse_scene_name,
    parsed_names,
    reference_name,
)
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.files.variables import GLOBAL_MEAN_STD, SCENE_VARIABLES
from seaice_mlflow.tasks.autoice.store import (
    LAYERS,
    NORMALISATION,
    SCENES,
    STORE_SCHEMA,
    content_digest,
    file_sha256,
    read_manifest,
    read_record,
    write_manifest,
    write_scene,
)
from seaice_mlflow.tasks.autoice.workers import process_pool

#: Failed files named in a message before the list is cut short.
NAMED_FAILURES = 5
#: ``--val-scenes auto``: this share of the training scenes validates, at most this many (the starter pack's 10).
AUTO_VAL_SHARE, AUTO_VAL_MAX = 0.1, 10


class PreprocessError(SeaIceError):
    """No scene could be converted, so no store was written; ``failed`` holds each file's problem."""

    def __init__(self, message: str, failed: list[dict[str, str]]):
        super().__init__(message)
        self.failed = failed


@dataclass(frozen=True)
class PreprocessOptions:
    """What decides the content of a scene group (a change means re-processing)."""

    downsample: int
    variables: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"schema_version": STORE_SCHEMA, "downsample": self.downsample, "variables": list(self.variables)}


@dataclass(frozen=True)
class PreprocessPlan:
    """A checked preprocess job (:func:`plan_preprocess`): nothing converted or written yet."""

    data_dir: Path
    store: Path
    files: tuple[Path, ...]
    options: PreprocessOptions
    val_scenes: int
    val_list: Path | None
    validation_ids: tuple[str, ...]  # the ids listed in val_list
    workers: int
    overwrite: bool
    seed: int

    @property
    def parameters(self) -> dict:
        """The manifest's ``parameters``."""
        return {
            **self.options.as_dict(),
            "val_scenes": self.val_scenes,
            "val_list": str(self.val_list) if self.val_list else None,
            "seed": self.seed,
        }


@dataclass
class PreprocessResult:
    """What a preprocess run did."""

    store: Path
    manifest: dict
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[dict[str, str]] = field(default_factory=list)  # {"file": ..., "problem": ...}


def check_options(downsample: int, variables: Sequence[str]) -> PreprocessOptions:
    """Validate the scene-level options with clear messages."""
    if int(downsample) != downsample or downsample < 1:
        raise ParameterError("downsample", f"must be a whole number >= 1, got {downsample}")
    unknown = [v for v in variables if v not in SCENE_VARIABLES]
    if unknown:
        raise ParameterError(
            "variables",
            f"{', '.join(unknown)} not stored by preprocess; choose among "
            f"{', '.join(SCENE_VARIABLES)} (time/position encodings are chosen at training)",
        )
    if not variables:
        raise ParameterError("variables", "no variable given")
    return PreprocessOptions(int(downsample), tuple(dict.fromkeys(variables)))


def process_scene(path: Path, root: Path, options: PreprocessOptions, overwrite: bool) -> tuple[str, dict]:
    """Worker: convert one file. Returns ("processed"|"skipped", record) or ("failed", problem)."""
    try:
        key = parse_scene_name(path).key
        checksum = file_sha256(path)
        source = {"file": path.name, "sha256": checksum, "bytes": path.stat().st_size}
        done = read_record(root, key)
        if (
            not overwrite
            and done is not None
            and done.get("source", {}).get("sha256") == checksum
            and done.get("options") == options.as_dict()
            and set(LAYERS) <= set(done.get("layers", ()))  # written before the filter layers: again
            and "metadata" in done  # written before records held the scene's metadata: again
        ):
            return "skipped", done
        scene = read_scene(path)
        if not scene.has_charts:
            raise SeaIceError(
                f"{path.name}: has no charts (a test file without its _prep_reference.nc); "
                "training needs charts, so put the reference next to it or leave the file out"
            )
        record = write_scene(
            root, scene, options.variables, options.downsample, {"source": source, "options": options.as_dict()}
        )
        return "processed", record
    except SeaIceError as err:
        return "failed", {"file": path.name, "problem": str(err)}


def failed_names(failed: Sequence[dict[str, str]]) -> str:
    """The names of failed files, the first :data:`NAMED_FAILURES` of them."""
    names = sorted(f["file"] for f in failed)
    more = len(names) - NAMED_FAILURES
    return ", ".join(names[:NAMED_FAILURES]) + (f" and {more} more" if more > 0 else "")


def training_candidates(files: Sequence[Path]) -> list[str]:
    """Ids of the scenes of ``files`` that may become training scenes, told by name alone: not a
    ``_prep.nc`` test file with its ``_prep_reference.nc`` next to it, nor a file whose name does
    not parse (it fails when converted)."""
    keys = (
        name.key
        for path, name in parsed_names(files)
        if not (name.file_kind == PREP and (path.parent / reference_name(name.key)).is_file())
    )
    return list(dict.fromkeys(keys))


def validation_count(val_scenes: int | str, trainable: int) -> int:
    """The number of validation scenes ``--val-scenes`` asks for: a number as given, or ``auto``:
    10 % of the ``trainable`` scenes, at least 1 when there are 2 or more, at most :data:`AUTO_VAL_MAX`."""
    text = str(val_scenes).strip().lower()
    if text == "auto":
        return min(AUTO_VAL_MAX, max(1 if trainable >= 2 else 0, round(AUTO_VAL_SHARE * trainable)))
    try:
        count = int(text)
    except ValueError:
        raise ParameterError("val-scenes", f"{val_scenes!r} is neither a number nor auto") from None
    if count < 0:
        raise ParameterError("val-scenes", f"must be >= 0, got {count}")
    return count


def read_val_list(path: Path) -> tuple[str, ...]:
    """The scene ids of a ``--val-list`` file, one per line."""
    return tuple(line.strip() for line in path.read_text().splitlines() if line.strip())


def check_split(
    plan: PreprocessPlan, trainable: Sequence[str], where: str, failed: Sequence[dict[str, str]] = ()
) -> None:
    """Fail, naming the option, when the validation scenes of ``plan`` cannot be taken from the
    ``trainable`` scene ids (``where`` says which those are); ``failed`` files are named as the cause."""
    cause = f"; {len(failed)} file(s) failed ({failed_names(failed)}): fix or remove them, or" if failed else ";"
    if plan.val_list is not None:
        unknown = sorted(set(plan.validation_ids) - set(trainable))
        if unknown:
            raise ParameterError(
                "val-list",
                f"{plan.val_list}: scene(s) {', '.join(unknown)} are not training "
                f"scenes {where}{cause} list training scenes only",
            )
    elif plan.val_scenes and plan.val_scenes >= len(trainable):
        raise ParameterError(
            "val-scenes",
            f"asked for {plan.val_scenes} validation scenes but there are only "
            f"{len(trainable)} training scenes {where}{cause} choose at most "
            f"{max(len(trainable) - 1, 0)}",
        )


def assign_splits(records: list[dict], plan: PreprocessPlan) -> None:
    """Test scenes stay "test"; of the others, those of ``--val-list`` or ``--val-scenes`` random
    ones (drawn with ``--seed``) become "val", the rest "train"."""
    trainable = sorted(r["scene_id"] for r in records if r["kind"] != "test")
    if plan.val_list is not None:
        chosen = set(plan.validation_ids)
    elif plan.val_scenes:
        chosen = set(np.random.default_rng(plan.seed).choice(trainable, size=plan.val_scenes, replace=False))
    else:
        chosen = set()
    for record in records:
        record["split"] = "test" if record["kind"] == "test" else ("val" if record["scene_id"] in chosen else "train")


def plan_preprocess(
    data_dir: str | Path,
    out: str | Path,
    *,
    downsample: int,
    variables: Sequence[str],
    val_scenes: int | str,
    val_list: str | Path | None,
    workers: int,
    overwrite: bool,
    seed: int,
) -> PreprocessPlan:
    """Check a preprocess job before anything is converted: options, ``out`` writable, scene
    files present, validation split sizes against the training scenes the file names promise."""
    options = check_options(downsample, variables)
    if workers < 1:
        raise ParameterError("workers", f"must be at least 1, got {workers}")
    val_path = Path(val_list) if val_list else None
    if val_path is not None and not val_path.is_file():
        raise ParameterError("val-list", f"{val_path} does not exist; give a text file with one scene id per line")
    store = check_writable(out, "out")
    data_dir = Path(data_dir)
    files = find_scene_files(data_dir)
    if not files:
        raise ParameterError(
            "data-dir", f"{data_dir} holds no AI4Arctic scene files (*_prep.nc or raw *_icechart_*.nc)"
        )
    trainable = training_candidates(files)
    plan = PreprocessPlan(
        data_dir=data_dir,
        store=store,
        files=tuple(files),
        options=options,
        val_scenes=validation_count(val_scenes, len(trainable)),
        val_list=val_path,
        validation_ids=read_val_list(val_path) if val_path else (),
        workers=workers,
        overwrite=overwrite,
        seed=seed,
    )
    check_split(plan, trainable, f"in {data_dir} (test files with a reference do not count)")
    return plan


def convert_scenes(plan: PreprocessPlan, on_scene: Callable[[str, dict], None] | None = None) -> PreprocessResult:
    """Convert the files of ``plan`` (in worker processes when it has more than one worker) into
    its store and write the manifest; a :class:`ParameterError` or :class:`PreprocessError`, and
    no manifest, when the scenes that converted cannot make the store asked for."""
    root = plan.store
    if (root / SCENES).is_dir():
        for stale in (root / SCENES).glob(".*.tmp"):  # left by a killed worker
            remove(stale)
    result = PreprocessResult(store=root, manifest={})
    records: list[dict] = []

    def collect(status: str, info: dict) -> None:
        if status == "failed":
            result.failed.append(info)
        else:
            records.append(info)
            (result.processed if status == "processed" else result.skipped).append(info["scene_id"])
        if on_scene is not None:
            on_scene(status, info)

    args = (root, plan.options, plan.overwrite)
    if plan.workers == 1:
        for path in plan.files:
            collect(*process_scene(path, *args))
    else:
        with process_pool(min(plan.workers, len(plan.files))) as pool:
            futures = {pool.submit(process_scene, path, *args): path for path in plan.files}
            for future in as_completed(futures):
                try:
                    collect(*future.result())
                except BrokenProcessPool:
                    collect(
                        "failed", {"file": futures[future].name, "problem": "the worker process died (out of memory?)"}
                    )

    result.failed.sort(key=lambda f: f["file"])
    if not records:
        raise PreprocessError(
            f"none of the {len(plan.files)} scene file(s) in {plan.data_dir} could be converted "
            f"({failed_names(result.failed)}), so no store was written; fix or remove them "
            "(each file's problem is reported with it)",
            result.failed,
        )
    records.sort(key=lambda r: r["scene_id"])
    check_split(
        plan, [r["scene_id"] for r in records if r["kind"] != "test"], f"converted from {plan.data_dir}", result.failed
    )
    assign_splits(records, plan)
    result.manifest = {
        "schema_version": STORE_SCHEMA,
        "software_version": __version__,
        "created": None,
        "data_dir": str(plan.data_dir.resolve()),
        "parameters": plan.parameters,
        "normalisation": NORMALISATION,
        "scenes": records,
        "failed": result.failed,
    }
    result.manifest["created"] = creation_time(root, result.manifest)
    (root / NORMALISATION).write_text(
        json.dumps(
            {
                "source": "AI4Arctic misc/global_meanstd.npy (v2, starter pack HEAD)",
                "mean_std": {k: {"mean": m, "std": s} for k, (m, s) in GLOBAL_MEAN_STD.items()},
            },
            indent=1,
        )
    )
    write_manifest(root, result.manifest)
    return result


def creation_time(root: Path, manifest: dict) -> str:
    """When the store's content was made: that of the manifest in ``root`` when its content is the
    same (a re-run that changed nothing leaves manifest.json as it was), else now (UTC)."""
    previous = read_manifest(root)
    if previous is not None and previous.get("created") and content_digest(previous) == content_digest(manifest):
        return previous["created"]
    return datetime.now(UTC).isoformat(timespec="seconds")


def preprocess(
    data_dir: str | Path, out: str | Path, *, on_scene: Callable[[str, dict], None] | None = None, **options
) -> PreprocessResult:
    """Convert every scene of ``data_dir`` into the store ``out`` and write its manifest:
    :func:`plan_preprocess` with ``options`` (its keyword arguments), then :func:`convert_scenes`."""
    return convert_scenes(plan_preprocess(data_dir, out, **options), on_scene)
