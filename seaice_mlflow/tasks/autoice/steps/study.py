"""The study step: one parent run ("study"), one child run per setting and seed.

Each child is a preprocess -> train -> evaluate chain whose steps are its own children (the
preprocess step only where the study has not yet brought that store up to date: settings that
leave the store as it is share it). The child logs the evaluate run's test metrics and is tagged
with a key of everything its result depends on (``seaice.study.child``); a later study whose
child has the key of a FINISHED run reuses that run instead of training again, so a re-run,
or a study killed half-way and started again, runs only the missing children. The key holds the
data by content, as the store digest does, not by folder: the sha256 of every training scene
file, of every test scene and reference file and of the season table (the source checksums the
store digest is made of, known before the store is brought up to date). Scenes swapped in
``--data-dir`` or ``--test-dir`` train and score again; the same files in another folder do not.
Reading the files once per study costs what preprocess's own checksums cost. The parent logs
``study.csv`` (mean and spread over seeds of every test metric), ``study.md`` and ``study.png``
(the headline scores against the setting), ``best_test_combined`` and the best setting's tag.

Everything that can be checked is checked before the first run starts: the kind, the values,
the seeds, the fixed options and every setting's training options, and for season and region
settings that some training scene meets them.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import mlflow

from seaice_mlflow.core.errors import ParameterError, option_name
from seaice_mlflow.core.io import write_csv
from seaice_mlflow.core.trainer import EpochReport
from seaice_mlflow.tasks.autoice import plots
from seaice_mlflow.tasks.autoice.config import PREPROCESS, TRAIN, PreprocessDefaults, StudyDefaults, StudyKind
from seaice_mlflow.tasks.autoice.files.metadata import read_metadata_files, read_season_table
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files, parsed_names, reference_name
from seaice_mlflow.tasks.autoice.steps.evaluate import evaluate
from seaice_mlflow.tasks.autoice.steps.main import PROFILES, Profile, scene_folders
from seaice_mlflow.tasks.autoice.steps.preprocess import preprocess
from seaice_mlflow.tasks.autoice.steps.train import stderr_line, train
from seaice_mlflow.tasks.autoice.store import file_sha256
from seaice_mlflow.tasks.autoice.strata import select_scenes
from seaice_mlflow.tasks.autoice.study import (
    Setting,
    SettingResult,
    batch_for_patch,
    headline_columns,
    markdown_table,
    parse_seeds,
    parse_settings,
    setting_error,
    table_rows,
)
from seaice_mlflow.tasks.autoice.train_config import TrainConfig
from seaice_mlflow.tasks.autoice.tuning import parse_fixed
from seaice_mlflow.tracking.runs import run_name, start_run, step_run, take_over

CHILD_TAG, KIND_TAG, SETTING_TAG, SEED_TAG = (
    "seaice.study.child",
    "seaice.study.kind",
    "seaice.study.setting",
    "seaice.study.seed",
)
#: Train options that say where and how a child runs, not what it learns (left out of its key).
NOT_IN_KEY = ("store", "out", "resume", "device", "workers", "nproc")
#: The train options each kind's table shows beside the scores.
SHOWN: dict[str, tuple[str, ...]] = {"patch-size": ("patch_size", "batch_size"), "data-size": ("scene_fraction",),
                                     "downsample": ()}  # fmt: skip
UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")
#: Train options a study sets itself, and where from.
SET_BY_STUDY = {"seed": "--seeds", "season_table": "--season-table", "device": "--device", "out": "--out"}


@dataclass(frozen=True)
class Child:
    """One setting and seed: its store's options and its training configuration."""

    kind: StudyKind
    setting: Setting
    seed: int
    store: PreprocessDefaults  # ``out`` is the store's folder
    config: TrainConfig
    key: str  # digest of everything the result depends on

    @property
    def name(self) -> str:
        return f"{self.kind}={self.setting.label} seed={self.seed}"


@dataclass
class StudyRun:
    run_id: str
    kind: StudyKind
    results: list[SettingResult]
    ran: int  # children trained by this invocation
    reused: int  # finished children of earlier ones
    table: str  # Markdown: mean +- spread of the headline scores per setting
    children: dict[str, str] = field(default_factory=dict)  # child name -> run id


@dataclass(frozen=True)
class StudyPlan:
    """The checked study: its settings, seeds, profile and the base training options."""

    kind: StudyKind
    options: StudyDefaults
    settings: list[Setting]
    seeds: list[int]
    profile: Profile
    base: dict[str, object]  # the profile's train options with --fixed on top

    def child_config(self, setting: Setting, seed: int, store: str, out: str) -> TrainConfig:
        """The training of ``setting`` at ``seed``; a bad value names ``--values``."""
        train = {**self.base, **setting.train}
        if self.kind == "patch-size" and self.options.patch_batch == "pixels":
            base_patch = int(self.base.get("patch_size", TRAIN.patch_size))
            base_batch = int(self.base.get("batch_size", TRAIN.batch_size))
            train["batch_size"] = batch_for_patch(int(train["patch_size"]), base_patch, base_batch)
        options = {**train, "seed": seed, "store": store, "out": out, "device": self.options.device,
                   "season_table": self.options.season_table}  # fmt: skip
        try:
            return TrainConfig(**options)
        except ParameterError as err:
            raise setting_error(self.kind, setting.label, err) from None


def plan_study(kind: StudyKind, options: StudyDefaults) -> StudyPlan:
    """Every check that needs no scene: kind, values, seeds, fixed options, each setting's training."""
    if options.profile not in PROFILES:
        raise ParameterError("profile", f"{options.profile!r} is not one of {', '.join(PROFILES)}")
    if options.data_dir and not options.test_dir:
        raise ParameterError("test_dir", "give the test scenes of your data too; synthetic test scenes are made "
                             "only when --data-dir is empty as well")  # fmt: skip
    settings = parse_settings(kind, options.values, options.profile)
    seeds = parse_seeds(options.seeds)
    fixed = parse_fixed(options.fixed)
    controlled = sorted(set(fixed) & set(SET_BY_STUDY))
    if controlled:
        raise ParameterError("fixed", f"{controlled[0]} is set by the study ({', '.join(SET_BY_STUDY.values())}); "
                             "leave it out of --fixed")  # fmt: skip
    varied = {name for s in settings for name in s.train}
    if kind == "patch-size" and options.patch_batch == "pixels":
        varied.add("batch_size")
    both = sorted(varied & set(fixed))
    if both:
        raise ParameterError("fixed", f"{', '.join(both)} is what a {kind} study varies; leave it out of --fixed")
    if options.season_table:
        read_season_table(options.season_table)
    profile = PROFILES[options.profile]
    base = {**profile.train, **fixed}
    try:
        TrainConfig(**base)
    except ParameterError as err:
        raise ParameterError("fixed", f"{option_name(err.name)} {err.problem}") from None
    plan = StudyPlan(kind, options, settings, seeds, profile, base)
    for setting in settings:
        plan.child_config(setting, seeds[0], "", "")
    return plan


def check_selections(plan: StudyPlan, train_dir: Path) -> None:
    """Each season or region setting must select some scene of ``train_dir``."""
    wheres = [(s, s.train["scenes_where"]) for s in plan.settings if s.train.get("scenes_where")]
    if not wheres:
        return
    table = read_season_table(plan.options.season_table) if plan.options.season_table else None
    metadata = read_metadata_files(find_scene_files(train_dir), table)
    for setting, where in wheres:
        try:
            select_scenes(metadata, where)
        except ParameterError as err:
            raise setting_error(plan.kind, setting.label, err) from None


def digest(values: object, length: int = 16) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:length]


def scene_checksums(folder: Path) -> dict[str, str]:
    """sha256 of each scene file of ``folder`` and of its test reference (if any), by file name."""
    files = find_scene_files(folder)
    references = [path.with_name(reference_name(name.key)) for path, name in parsed_names(files)]
    return {path.name: file_sha256(path) for path in [*files, *references] if path.is_file()}


def plan_children(plan: StudyPlan, train_dir: Path, test_dir: Path, work: Path) -> list[Child]:
    """Every setting x seed, settings first; a store per downsampling factor of the data. Each
    child's key holds the data by content (module docstring)."""
    table = plan.options.season_table
    data = {"train": scene_checksums(train_dir), "test": scene_checksums(test_dir),
            "season_table": file_sha256(Path(table)) if table else ""}  # fmt: skip
    children = []
    for setting in plan.settings:
        downsample = setting.downsample or plan.profile.downsample
        store_options = {"downsample": downsample, "val_scenes": plan.profile.val_scenes,
                         "seed": plan.options.data_seed, "variables": PREPROCESS.variables}  # fmt: skip
        store = work / "stores" / f"x{downsample}-{digest([str(train_dir), store_options], 8)}"
        for seed in plan.seeds:
            config = plan.child_config(setting, seed, str(store), "")
            # the season table's content is in ``data``, its path is left out
            learnt = {k: v for k, v in config.as_params().items() if k not in (*NOT_IN_KEY, "season_table")}
            key = digest({"kind": plan.kind, "setting": setting.label, "seed": seed, "data": data,
                          "store": store_options, "train": learnt, "by": setting.by})  # fmt: skip
            folder = work / "children" / f"{UNSAFE.sub('_', plan.kind + '-' + setting.label)}-s{seed}-{key[:6]}"
            children.append(Child(plan.kind, setting, seed, replace(PREPROCESS, out=str(store), **store_options),
                                  replace(config, out=str(folder)), key))  # fmt: skip
    return children


def finished_child(experiment_id: str, key: str) -> mlflow.entities.Run | None:
    """The latest FINISHED child run with ``key``, in the study's experiment."""
    runs = mlflow.MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`{CHILD_TAG}` = '{key}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


@dataclass
class ChildRunner:
    """Runs children in the active (the study's) run; brings each store up to date once."""

    train_dir: Path
    test_dir: Path
    echo: Callable[[str], None]
    prepared: set[str] = field(default_factory=set)

    def __call__(self, child: Child) -> str:
        setting = child.setting
        with start_run(child.name, "study") as run:
            mlflow.set_tags({CHILD_TAG: child.key, KIND_TAG: child.kind, SETTING_TAG: setting.label,
                             SEED_TAG: str(child.seed)})  # fmt: skip
            varied = {k: getattr(child.config, k) for k in (*setting.train, *SHOWN.get(child.kind, ()))}
            mlflow.log_params({"kind": child.kind, "setting": setting.label, "seed": child.seed,
                               "downsample": child.store.downsample, "store": child.store.out, **varied})  # fmt: skip
            if child.store.out not in self.prepared:
                prepared = preprocess(self.train_dir, child.store, echo=self.echo)
                mlflow.set_tag("seaice.study.preprocess_run", prepared.run_id)
                self.prepared.add(child.store.out)

            def on_epoch(report: EpochReport) -> None:
                score = report.metrics.get("val_combined", math.nan)
                self.echo(f"  epoch {report.epoch + 1}/{child.config.epochs}: val_combined {score:.2f}")

            trained = train(child.config, on_epoch=on_epoch, echo=self.echo)
            evaluated = evaluate(trained.model_uri, self.test_dir, device=child.config.device, by=",".join(setting.by),
                                 season_table=child.config.season_table or None, warn=self.echo)  # fmt: skip
            best = math.nan if trained.best_val_combined is None else trained.best_val_combined
            mlflow.log_metrics({**evaluated.metrics, "best_val_combined": best})
            mlflow.set_tags({"seaice.study.train_run": trained.run_id, "seaice.study.evaluate_run": evaluated.run_id,
                             "seaice.study.model_uri": trained.model_uri})  # fmt: skip
            return run.info.run_id


def collect(plan: StudyPlan, children: Sequence[Child], run_ids: dict[str, str]) -> list[SettingResult]:
    """Each setting's children's test metrics (from their runs), seeds in the order given."""
    client = mlflow.MlflowClient()
    results = []
    for setting in plan.settings:
        mine = [c for c in children if c.setting.label == setting.label]
        runs = [client.get_run(run_ids[c.key]) for c in mine]
        shown = {k: getattr(mine[0].config, k) for k in SHOWN.get(plan.kind, ())}
        results.append(SettingResult(setting, tuple(c.seed for c in mine), tuple(r.info.run_id for r in runs),
                                     tuple({k: v for k, v in r.data.metrics.items() if k.startswith("test_")}
                                           for r in runs), shown))  # fmt: skip
    return results


def log_comparison(plan: StudyPlan, results: Sequence[SettingResult]) -> str:
    """The table (CSV and Markdown), the plot and the best setting, on the study's run."""
    shown = SHOWN.get(plan.kind, ())
    table = markdown_table(plan.kind, results, shown)
    approximate = any("season" in s.by for s in plan.settings) and not plan.options.season_table
    with tempfile.TemporaryDirectory(prefix="seaice-study-") as tmp:
        write_csv(table_rows(results, shown), Path(tmp) / "study.csv")
        (Path(tmp) / "study.md").write_text(table)
        figure = plots.study_scores(plan.kind, results, headline_columns(results), approximate)
        plots.save(figure, Path(tmp) / "study.png")
        mlflow.log_artifacts(tmp)
    scored = [r for r in results if not math.isnan(r.mean("test_combined"))]
    if scored:
        best = max(scored, key=lambda r: r.mean("test_combined"))
        mlflow.log_metric("best_test_combined", best.mean("test_combined"))
        mlflow.set_tag("seaice.study.best_setting", best.setting.label)
    return table


def study(
    kind: StudyKind, options: StudyDefaults = StudyDefaults(), echo: Callable[[str], None] = stderr_line
) -> StudyRun:
    """Run the children a ``kind`` study still lacks and compare all of them, in the active (or a new) run."""
    plan = plan_study(kind, options)
    work = Path(options.out).resolve()
    train_dir, test_dir = scene_folders(plan.profile, options.data_dir, options.test_dir, work, options.data_seed)
    check_selections(plan, train_dir)
    children = plan_children(plan, train_dir, test_dir, work)
    params = {**asdict(options), "kind": kind, "values": ";".join(s.label for s in plan.settings),
              "data_dir": str(train_dir), "test_dir": str(test_dir), "out": str(work)}  # fmt: skip
    with step_run("study", params, name=run_name("study", kind, params["values"])) as run:
        take_over("study", {"kind": kind, "out": str(work)}, echo)  # a killed study's run, its children, their steps
        mlflow.set_tags({KIND_TAG: kind, "seaice.data_dir": str(train_dir), "seaice.test_dir": str(test_dir)})
        runner = ChildRunner(train_dir, test_dir, echo)
        run_ids: dict[str, str] = {}
        ran = 0
        for number, child in enumerate(children, 1):
            earlier = finished_child(run.info.experiment_id, child.key)
            if earlier is not None:
                run_ids[child.key] = earlier.info.run_id
                echo(f"[{number}/{len(children)}] {child.name}: done earlier (run {earlier.info.run_id})")
                continue
            echo(f"[{number}/{len(children)}] {child.name}")
            run_ids[child.key] = runner(child)
            ran += 1
        results = collect(plan, children, run_ids)
        mlflow.log_metrics({"children": len(children), "children_run": ran, "children_reused": len(children) - ran})
        table = log_comparison(plan, results)
        names = {c.name: run_ids[c.key] for c in children}
        return StudyRun(run.info.run_id, kind, results, ran, len(children) - ran, table, names)
