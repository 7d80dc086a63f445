"""The README's GIS picture: a synthetic scene's charts as GeoTIFFs in EPSG:3413, drawn in map frames.

Makes two synthetic ready-to-train scenes (cached in .bench/), takes the one whose charts hold more
distinct (SIC, SOD, FLOE) regions, writes its reference charts as a model's
products would be written (``seaice predict --format geotiff,vector --crs EPSG:3413``: GeoTIFFs warped
to the polar stereographic grid, and the polygons), prints what was written and draws the three
GeoTIFFs with their colour tables and a lon/lat graticule (``gis.quicklook.map_figure``).

    python benchmarks/gis_quicklook.py [--size 2000 2400] [--crs EPSG:3413] [--out docs/images/geotiff_map.png]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyogrio

from common import ROOT, synthetic_split
from seaice_mlflow.core.engine import ChartPrediction
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.files.naming import find_scene_files
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.gis import GisOptions, check_options
from seaice_mlflow.tasks.autoice.gis.polygons import combined_codes
from seaice_mlflow.tasks.autoice.gis.quicklook import map_figure
from seaice_mlflow.tasks.autoice.plots import save
from seaice_mlflow.tasks.autoice.products import write_products


def distinct_regions(scene) -> int:
    """How many distinct (SIC, SOD, FLOE) combinations the scene's charts hold."""
    codes, valid = combined_codes(scene.charts)
    return len(np.unique(codes[valid]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, nargs=2, default=(2000, 2400), metavar=("LINES", "SAMPLES"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--crs", default="EPSG:3413")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images" / "geotiff_map.png")
    args = parser.parse_args()
    scenes = [read_scene(p) for p in find_scene_files(synthetic_split("gis", 2, tuple(args.size), "train", args.seed))]
    scene = max(scenes, key=distinct_regions)
    gis = check_options(GisOptions(crs=args.crs))
    with tempfile.TemporaryDirectory() as work:
        started = time.perf_counter()
        files = write_products(
            work, scene, ChartPrediction(dict(scene.charts)), {"model_uri": "reference charts"}, True,
            ("geotiff", "vector"), gis,
        )  # fmt: skip
        print(f"{scene.scene_id} ({scene.shape[0]} x {scene.shape[1]} px): wrote {len(files)} files in "
              f"{time.perf_counter() - started:.1f} s")  # fmt: skip
        for path in files:
            print(f"  {path.name}: {path.stat().st_size / 1e3:.0f} kB")
        print(f"  polygons: {pyogrio.read_info(files[-1])['features']}")
        tifs = [p for chart in CHART_NAMES for p in files if p.name.endswith(f"_{chart}.tif")]
        figure = map_figure(tifs, f"Synthetic scene {scene.scene_id}: reference charts as GeoTIFFs in {gis.crs}")
        print(f"wrote {save(figure, args.out, dpi=90)}")


if __name__ == "__main__":
    main()
