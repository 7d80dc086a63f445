"""Names, grids and normalisation of the AI4Arctic scene variables (spec section 2).

Model inputs are selected by these names, never by position in a file.
"""

from __future__ import annotations

import numpy as np

#: Variables on the full-resolution (80 m) SAR grid, in the starter pack's order.
SAR_VARIABLES: tuple[str, ...] = (
    "nersc_sar_primary",
    "nersc_sar_secondary",
    "sar_incidenceangle",
    "distance_map",
)

#: AMSR2 brightness temperatures on the 2 km grid.
AMSR2_VARIABLES: tuple[str, ...] = tuple(
    f"btemp_{band}{pol}" for band in ("6_9", "7_3", "10_7", "18_7", "23_8", "36_5", "89_0") for pol in ("h", "v")
)

#: ERA5 fields on the 2 km grid.
ERA5_VARIABLES: tuple[str, ...] = ("u10m_rotated", "v10m_rotated", "t2m", "skt", "tcwv", "tclw")

#: Variables on the 2 km AMSR2/ERA5 grid.
COARSE_VARIABLES: tuple[str, ...] = AMSR2_VARIABLES + ERA5_VARIABLES

#: The 24 model inputs of the starter pack (``utils.SCENE_VARIABLES``), canonical order.
SCENE_VARIABLES: tuple[str, ...] = SAR_VARIABLES + COARSE_VARIABLES

#: Inputs derived from the scene id and the geolocation tie points (optional encodings).
#: ``month``: 2*(m-1)/11 - 1 in [-1, 1]; ``sin_lat`` etc.: sin/cos of pi*lat/90 and pi*lon/180.
ENCODING_VARIABLES: tuple[str, ...] = ("month", "sin_lat", "cos_lat", "sin_lon", "cos_lon")

#: Every name a model may ask for.
INPUT_VARIABLES: tuple[str, ...] = SCENE_VARIABLES + ENCODING_VARIABLES

#: Latitude/longitude tie points of the ready-to-train files (21 x 21, degrees, not scaled).
LATITUDE = "sar_grid2d_latitude"
LONGITUDE = "sar_grid2d_longitude"

#: Dimension names of the ready-to-train files.
SAR_DIMS = ("sar_lines", "sar_samples")
COARSE_DIMS = ("2km_grid_lines", "2km_grid_samples")
TIE_POINT_DIMS = ("sar_sample_2dgrid_points", "sar_line_2dgrid_points")

#: Fine (80 m) pixels per 2 km cell in the ready-to-train files; 50 in the 40 m raw files.
COARSE_FACTOR = 25

#: Global mean and standard deviation of each input (``misc/global_meanstd.npy``, v2, HEAD).
#: The ready-to-train files hold z = (x - mean) / std of these physical values.
GLOBAL_MEAN_STD: dict[str, tuple[float, float]] = {
    "nersc_sar_primary": (-14.508255, 5.659746),
    "nersc_sar_secondary": (-24.701205, 4.746759),
    "sar_incidenceangle": (33.998018, 8.322267),
    "distance_map": (23.627670, 14.990186),
    "btemp_6_9h": (148.8470, 61.6485),
    "btemp_6_9v": (203.5194, 38.6664),
    "btemp_7_3h": (149.8990, 61.6754),
    "btemp_7_3v": (204.2053, 38.6662),
    "btemp_10_7h": (153.8917, 60.8752),
    "btemp_10_7v": (208.9041, 36.2450),
    "btemp_18_7h": (165.6803, 52.6179),
    "btemp_18_7v": (218.5868, 28.0604),
    "btemp_23_8h": (182.2089, 42.8872),
    "btemp_23_8v": (226.3965, 22.1176),
    "btemp_36_5h": (185.1947, 38.6444),
    "btemp_36_5v": (228.2059, 17.6526),
    "btemp_89_0h": (212.5375, 22.5850),
    "btemp_89_0v": (241.2575, 16.3110),
    "u10m_rotated": (0.674799, 4.749647),
    "v10m_rotated": (0.607557, 5.196105),
    "t2m": (268.62655, 9.469171),
    "skt": (268.91015, 10.305256),
    "tcwv": (7.747742, 5.268575),
    "tclw": (0.041246, 0.071128),
}

#: Upper edges (km) of distance-to-land zones 1..40; zone 0 is land, zone 41 is > 300 km.
DISTANCE_ZONE_EDGES_KM: tuple[float, ...] = (
    (0.5, 1.0)
    + tuple(float(k) for k in range(2, 21))
    + tuple(float(k) for k in range(25, 51, 5))
    + tuple(float(k) for k in range(60, 101, 10))
    + tuple(float(k) for k in range(125, 301, 25))
)
N_DISTANCE_ZONES = len(DISTANCE_ZONE_EDGES_KM) + 2  # land + 40 bounded zones + open-ended

#: Human-readable zone table, as in the files' ``zonal_range_description`` attribute.
DISTANCE_ZONE_DESCRIPTION = "; ".join(
    ["0: land"]
    + [
        f"{k + 1}: {lo:g}-{hi:g} km"
        for k, (lo, hi) in enumerate(zip((0.0,) + DISTANCE_ZONE_EDGES_KM[:-1], DISTANCE_ZONE_EDGES_KM))
    ]
    + [f"{N_DISTANCE_ZONES - 1}: > {DISTANCE_ZONE_EDGES_KM[-1]:g} km"]
)


def distance_zone(distance_km: np.ndarray) -> np.ndarray:
    """Zone id (0..41) of each distance to land in km; 0 km is land (zone 0)."""
    distance_km = np.asarray(distance_km)
    zones = 1 + np.searchsorted(np.asarray(DISTANCE_ZONE_EDGES_KM), distance_km, side="left")
    return np.where(distance_km <= 0, 0, zones).astype(np.uint8)


def standard_scale(name: str, values: np.ndarray) -> np.ndarray:
    """z-score of physical values with the published global mean/std (float32)."""
    mean, std = GLOBAL_MEAN_STD[name]
    return ((np.asarray(values, dtype=np.float64) - mean) / std).astype(np.float32)


def physical_value(name: str, z: np.ndarray) -> np.ndarray:
    """Inverse of :func:`standard_scale`: physical units from z-scores (float64)."""
    mean, std = GLOBAL_MEAN_STD[name]
    return np.asarray(z, dtype=np.float64) * std + mean


def check_input_variables(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validate a user's list of model inputs; returns it as a tuple, in the given order."""
    unknown = [n for n in names if n not in INPUT_VARIABLES]
    if unknown:
        raise ValueError(
            f"unknown input variable(s) {', '.join(unknown)}; choose from: {', '.join(INPUT_VARIABLES)} "
            f"or a set: {', '.join(INPUT_SETS)}"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"input variables listed twice: {', '.join(names)}")
    if not names:
        raise ValueError("no input variables given")
    return tuple(names)


#: Named input sets: ``all`` are the starter pack's 24 inputs; ``all+encodings`` adds month and
#: position; ``compact`` is the winner's physical selection (MMSeaIce) with the encodings.
INPUT_SETS: dict[str, tuple[str, ...]] = {
    "all": SCENE_VARIABLES,
    "all+encodings": SCENE_VARIABLES + ENCODING_VARIABLES,
    "compact": SAR_VARIABLES
    + (
        "btemp_18_7h",
        "btemp_18_7v",
        "btemp_36_5h",
        "btemp_36_5v",
        "u10m_rotated",
        "v10m_rotated",
        "t2m",
        "tcwv",
        "tclw",
    )
    + ENCODING_VARIABLES,
}


def parse_variables(spec: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Input variables from a set name (``all``, ``all+encodings``, ``compact``) or a comma list."""
    if isinstance(spec, str):
        spec = spec.strip()
        if spec in INPUT_SETS:
            return INPUT_SETS[spec]
        spec = [s.strip() for s in spec.split(",") if s.strip()]
    return check_input_variables(list(spec))
