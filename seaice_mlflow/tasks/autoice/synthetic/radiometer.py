"""AMSR2 brightness temperatures and ERA5 fields of a synthetic scene on the 2 km grid.

AMSR2 sees the true ice, old-ice and land fractions of each 2 km cell, blurred by each
channel's footprint (6.9 GHz about 35 x 62 km, 89 GHz about 3 x 5 km), so land spills over onto
coastal sea and low frequencies are smooth; water is cold in H polarisation, first-year ice
warm, old ice darker at high frequencies; weather brightens water at 23.8, 36.5 and 89 GHz.
ERA5 fields are smooth (31 km) and consistent with the wind that roughens open water in the SAR.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from seaice_mlflow.tasks.autoice.files.variables import COARSE_FACTOR
from seaice_mlflow.tasks.autoice.synthetic.fields import SmoothField

#: channel -> (open water K, first-year ice K, old ice K, land K, footprint sigma in 2 km cells,
#: noise K, water-vapour sensitivity K per kg/m2, cloud-liquid sensitivity K per kg/m2)
AMSR2_CHANNELS: dict[str, tuple[float, ...]] = {
    "btemp_6_9h": (85, 235, 225, 255, 9.0, 0.6, 0.1, 5),
    "btemp_6_9v": (160, 250, 245, 265, 9.0, 0.6, 0.1, 5),
    "btemp_7_3h": (86, 235, 224, 255, 8.5, 0.6, 0.1, 5),
    "btemp_7_3v": (161, 250, 244, 265, 8.5, 0.6, 0.1, 5),
    "btemp_10_7h": (90, 234, 220, 255, 6.0, 0.7, 0.2, 10),
    "btemp_10_7v": (165, 250, 242, 265, 6.0, 0.7, 0.2, 10),
    "btemp_18_7h": (105, 232, 205, 255, 3.5, 0.8, 0.6, 30),
    "btemp_18_7v": (180, 248, 225, 265, 3.5, 0.8, 0.6, 30),
    "btemp_23_8h": (125, 232, 200, 255, 3.5, 0.9, 2.0, 40),
    "btemp_23_8v": (195, 247, 220, 265, 3.5, 0.9, 1.5, 40),
    "btemp_36_5h": (135, 228, 185, 250, 1.8, 1.0, 1.0, 80),
    "btemp_36_5v": (205, 245, 205, 262, 1.8, 1.0, 0.8, 80),
    "btemp_89_0h": (180, 220, 180, 245, 0.8, 2.5, 2.5, 120),
    "btemp_89_0v": (225, 235, 195, 255, 0.8, 2.5, 2.0, 120),
}


def cell_centres(n_cells: int) -> np.ndarray:
    """80 m pixel coordinate of the centre of each 2 km cell."""
    return np.arange(n_cells) * COARSE_FACTOR + (COARSE_FACTOR - 1) / 2


def era5_fields(
    rng: np.random.Generator,
    coarse_shape: tuple[int, int],
    month: int,
    ice: np.ndarray,
    wind: tuple[SmoothField, SmoothField],
    wind_mean: tuple[float, float],
) -> dict[str, np.ndarray]:
    """ERA5 u10/v10 (rotated), t2m, skt, tcwv, tclw in physical units on the 2 km grid."""
    rows, cols = cell_centres(coarse_shape[0]), cell_centres(coarse_shape[1])
    shape80 = (coarse_shape[0] * COARSE_FACTOR, coarse_shape[1] * COARSE_FACTOR)
    smooth = [SmoothField(rng, shape80, 400.0).sample(rows, cols) for _ in range(3)]
    winter, summer = month in (11, 12, 1, 2, 3, 4), month in (6, 7, 8, 9)
    base = rng.uniform(245, 262) if winter else rng.uniform(270, 276) if summer else rng.uniform(260, 270)
    ice_area = ndimage.gaussian_filter(ice, sigma=8, mode="nearest")
    t2m = base + 0.6 * (1 - ice_area) * max(271.5 - base, 0) + 1.5 * smooth[0]
    skt = ice_area * (t2m - (1.5 if winter else 0.0)) + (1 - ice_area) * np.maximum(t2m + 1.0, 271.3)
    tcwv = np.clip(2 + 0.35 * (base - 245) + 2 * smooth[1], 0.3, None)
    tclw = 0.12 * np.maximum(smooth[2] + 0.2, 0) ** 2
    return {
        "u10m_rotated": wind_mean[0] + 3 * wind[0].sample(rows, cols),
        "v10m_rotated": wind_mean[1] + 3 * wind[1].sample(rows, cols),
        "t2m": t2m,
        "skt": skt,
        "tcwv": tcwv,
        "tclw": tclw,
    }


def brightness_temperatures(
    rng: np.random.Generator, ice: np.ndarray, old: np.ndarray, land: np.ndarray, era5: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """AMSR2 brightness temperatures (K) of cells with the given ice, old-ice and land fractions."""
    out = {}
    for name, (water_k, fyi_k, myi_k, land_k, sigma, noise, vapour, liquid) in AMSR2_CHANNELS.items():
        see = [ndimage.gaussian_filter(f, sigma=sigma, mode="nearest") for f in (ice, old, land)]
        ice_f, old_f, land_f = see
        water_f = np.clip(1 - ice_f - land_f, 0, 1)
        water = water_k + vapour * (era5["tcwv"] - 5) + liquid * era5["tclw"]
        sea_ice = (ice_f - old_f) * fyi_k + old_f * myi_k + 0.4 * ice_f * (era5["skt"] - 258)
        tb = water_f * water + sea_ice + land_f * land_k + noise * rng.standard_normal(ice.shape)
        out[name] = tb
    return out
