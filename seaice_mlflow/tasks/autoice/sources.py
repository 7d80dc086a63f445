"""Where tiles come from: a scene (in memory or in the store) or an input array, on a model's grid.

A :class:`TileSource` hands the inference engine the model inputs of any window of its working
grid, so a whole scene is never assembled in memory: 24 channels of a 5000 x 5200 scene would be
2.5 GB, a 512 x 512 tile is 25 MB.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from seaice_mlflow.core.tiling import Window
from seaice_mlflow.tasks.autoice.downsample import downsample_mean, working_shape
from seaice_mlflow.tasks.autoice.files.variables import SAR_VARIABLES
from seaice_mlflow.tasks.autoice.grid import SceneSource, assemble_inputs


def valid_mask_variable(name: str) -> bool:
    """SAR variables are averaged over SAR pixels only; the distance map over all pixels."""
    return name in SAR_VARIABLES and name != "distance_map"


class DownsampledScene:
    """An 80 m scene seen on the x K working grid of a model (a :class:`grid.SceneSource`)."""

    def __init__(self, scene: SceneSource, downsample: int):
        self.scene, self.downsample = scene, downsample
        self.full_shape = tuple(scene.full_shape)
        self.shape = working_shape(self.full_shape, downsample)
        self.coarse_shape = scene.coarse_shape
        self.latitude, self.longitude, self.month = scene.latitude, scene.longitude, scene.month

    def read_sar(self, names: Sequence[str], window: Window) -> dict[str, np.ndarray]:
        k = self.downsample
        fine = Window(
            window.row * k,
            window.col * k,
            min(window.height * k, self.full_shape[0] - window.row * k),
            min(window.width * k, self.full_shape[1] - window.col * k),
        )
        values = self.scene.read_sar(names, fine)
        hh = self.scene.read_sar(["nersc_sar_primary"], fine)["nersc_sar_primary"]
        valid = hh != 0
        return {n: downsample_mean(values[n], k, valid if valid_mask_variable(n) else None) for n in names}

    def read_coarse(self, names: Sequence[str], rows: slice, cols: slice) -> dict[str, np.ndarray]:
        return self.scene.read_coarse(names, rows, cols)


class SceneTiles:
    """Tiles of a scene's inputs (``variables`` in model order) on a model's working grid."""

    def __init__(self, scene: SceneSource, variables: Sequence[str], downsample: int = 1):
        if scene.downsample == downsample:
            self.source = scene
        elif scene.downsample == 1:
            self.source = DownsampledScene(scene, downsample)
        else:
            raise ValueError(f"the scene is stored x{scene.downsample}, the model works at x{downsample}")
        self.variables, self.shape = tuple(variables), tuple(self.source.shape)

    def read(self, window: Window) -> np.ndarray:
        return assemble_inputs(self.source, self.variables, window)


class ArrayTiles:
    """Tiles of an input stack (C, H, W) at 80 m whose channels are ``variables``, on the x K grid.

    SAR channels are averaged over pixels with HH data, the distance map over all pixels, 2 km
    channels and encodings take the pixel at each block's centre (k odd) or just before it
    (k even: the centre lies between two pixels, and the 2 km cell of the centre is always that
    of the pixel before it); so a stack built with
    :func:`grid.assemble_inputs` gives the same tiles as :class:`SceneTiles` (encodings to within
    their interpolation between neighbouring pixels).
    """

    def __init__(self, stack: np.ndarray, variables: Sequence[str], downsample: int = 1):
        if stack.ndim != 3 or stack.shape[0] != len(variables):
            raise ValueError(f"expected an input of shape ({len(variables)}, H, W), got {stack.shape}")
        self.stack, self.variables, self.downsample = stack, tuple(variables), downsample
        self.shape = working_shape(stack.shape[1:], downsample)
        self.hh = self.variables.index("nersc_sar_primary") if "nersc_sar_primary" in self.variables else None

    def read(self, window: Window) -> np.ndarray:
        k = self.downsample
        block = self.stack[
            :, window.row * k : (window.row + window.height) * k, window.col * k : (window.col + window.width) * k
        ]
        if k == 1:
            return np.ascontiguousarray(block, dtype=np.float32)
        valid = block[self.hh] != 0 if self.hh is not None else None
        out = np.empty((len(self.variables), window.height, window.width), np.float32)
        for i, name in enumerate(self.variables):
            if name in SAR_VARIABLES:
                out[i] = downsample_mean(block[i], k, valid if valid_mask_variable(name) else None)
            else:  # 2 km variables and encodings: the pixel at (or, k even, just before) each block's
                # centre, whose 2 km cell is the one grid.coarse_indices gives the centre itself
                centre = block[i, (k - 1) // 2 :: k, (k - 1) // 2 :: k]
                out[i] = np.pad(
                    centre, [(0, window.height - centre.shape[0]), (0, window.width - centre.shape[1])], mode="edge"
                )
        return out
