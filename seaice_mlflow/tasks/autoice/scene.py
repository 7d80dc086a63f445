"""The in-memory scene: named arrays on the 80 m and 2 km grids plus id, provider, date and masks."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal, get_args

import numpy as np

from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.charts import IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.nonfinite import NonFinite
from seaice_mlflow.tasks.autoice.grid import assemble_inputs

#: Kinds of scene: ``ready`` (inputs and charts), ``test`` (inputs, charts from a reference file
#: when present), ``raw`` (40 m file converted on reading).
SceneKind = Literal["ready", "test", "raw"]
SCENE_KINDS: tuple[SceneKind, ...] = get_args(SceneKind)


@dataclass
class Scene:
    """One Sentinel-1 scene as the ready-to-train files hold it (z-scores, 80 m, uint8 charts).

    ``sar`` holds HH, HV, incidence angle and distance map on the 80 m grid (0 where there is no
    SAR data); ``coarse`` the AMSR2/ERA5 variables on the 2 km grid; ``charts`` SIC/SOD/FLOE
    (255 = masked), empty for test scenes without a reference; ``non_finite`` the input values
    that were not finite in the file and how the reader masked or filled them.
    """

    scene_id: str
    provider: str
    date: datetime
    kind: SceneKind
    source: Path
    sar: dict[str, np.ndarray]
    coarse: dict[str, np.ndarray]
    latitude: np.ndarray
    longitude: np.ndarray
    charts: dict[str, np.ndarray] = field(default_factory=dict)
    attrs: dict[str, object] = field(default_factory=dict)
    non_finite: NonFinite = field(default_factory=NonFinite)

    @property
    def shape(self) -> tuple[int, int]:
        """(lines, samples) of the 80 m grid."""
        return tuple(self.sar["nersc_sar_primary"].shape)

    @property
    def full_shape(self) -> tuple[int, int]:
        """The 80 m grid (an in-memory scene is never downsampled)."""
        return self.shape

    downsample = 1

    @property
    def coarse_shape(self) -> tuple[int, int]:
        return tuple(next(iter(self.coarse.values())).shape)

    @property
    def month(self) -> int:
        return self.date.month

    @property
    def has_charts(self) -> bool:
        return bool(self.charts)

    @property
    def sar_valid(self) -> np.ndarray:
        """Pixels with SAR data: inside the swath and not land (HH is exactly 0 elsewhere)."""
        hh = self.sar["nersc_sar_primary"]
        return np.isfinite(hh) & (hh != 0)

    def chart_valid(self, chart: str) -> np.ndarray:
        """Pixels where ``chart`` has a class (reference not 255)."""
        return self.charts[chart] != IGNORE_INDEX

    def read_sar(self, names: Sequence[str], window: Window) -> dict[str, np.ndarray]:
        return {name: self.sar[name][window.slices] for name in names}

    def read_coarse(self, names: Sequence[str], rows: slice, cols: slice) -> dict[str, np.ndarray]:
        return {name: self.coarse[name][rows, cols] for name in names}

    def inputs(self, variables: Sequence[str], window: Window | None = None) -> np.ndarray:
        """Model inputs (C, h, w) float32 for ``window`` (default: the whole scene)."""
        return assemble_inputs(self, variables, window)
