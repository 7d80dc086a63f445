"""Which scenes a re-run of ``seaice predict`` skips: those whose products exist from the same model.

Every product records a :func:`chart_signature` as a global attribute (netCDF), a dataset tag
(GeoTIFF) or layer metadata (GeoPackage): the logged model(s) that charted it and the options that
change its content (probabilities, uncertainty layers, the GIS grid); with uncertainty layers it also
names them (:data:`~seaice_mlflow.tasks.autoice.uncertainty_layers.LAYERS_ATTRIBUTE`), since which
layers a model gives (spread, disagreement, ...) is known only once it has charted. A scene is skipped
when every file it would keep exists and records the signature of this run: each product in the formats
asked, the GeoTIFF of each uncertainty layer the products name, and the quicklook (which records nothing:
it is written after the products, so a run that rewrote it rewrote a product too). Anything else (a
missing or unreadable file, another model or other options in any one of them) charts it again, and
``--overwrite`` charts every scene. Tiling and device are not in the signature: they move a few pixels
at most. The in-process loop and the Dask client both ask :class:`ExistingProducts`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from seaice_mlflow.core.errors import SceneError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES
from seaice_mlflow.tasks.autoice.files.naming import REFERENCE, parse_scene_name
from seaice_mlflow.tasks.autoice.gis import GisOptions, ProductFormat, geotiff_name, vector_name
from seaice_mlflow.tasks.autoice.products import product_name, quicklook_name
from seaice_mlflow.tasks.autoice.uncertainty_layers import LAYERS_ATTRIBUTE
from seaice_mlflow.tracking.model_refs import ModelRef

#: The attribute (tag, metadata key) holding a product's signature.
SIGNATURE = "chart_signature"


def chart_signature(
    refs: Sequence[ModelRef],
    probabilities: bool,
    uncertainty: bool,
    formats: Sequence[ProductFormat],
    gis: GisOptions,
) -> str:
    """What made a scene's products: the model(s) (logged model ids, else the pinned URIs) and the options
    that change their content."""
    models = ", ".join(r.canonical_uri for r in refs)
    layers = ["charts"] + ["probabilities"] * probabilities + ["uncertainty"] * uncertainty
    parts = [f"models {models}", f"layers {'+'.join(layers)}"]
    if any(f != "netcdf" for f in formats):
        parts.append(f"crs {gis.crs or 'GCPs/EPSG:4326'}, pixel size {gis.pixel_size:g}")
    return "; ".join(parts)


def product_files(
    folder: Path, scene_id: str, formats: Sequence[ProductFormat], layers: Sequence[str] = ()
) -> list[Path]:
    """The files ``seaice predict`` writes for a scene in ``formats`` with the uncertainty ``layers``
    (names such as ``SOD_entropy``): the products, then the quicklook."""
    names: list[str] = []
    if "netcdf" in formats:
        names.append(product_name(scene_id))
    if "geotiff" in formats:
        names += [geotiff_name(scene_id, name) for name in (*CHART_NAMES, *layers)]
    if "vector" in formats:
        names.append(vector_name(scene_id))
    return [folder / name for name in [*names, quicklook_name(scene_id)]]


def recorded_attributes(path: Path) -> Mapping[str, str]:
    """The global attributes (netCDF), dataset tags (GeoTIFF) or layer metadata (GeoPackage) of a product;
    empty when the file records none or cannot be read."""
    try:
        if path.suffix == ".nc":
            import netCDF4

            with netCDF4.Dataset(path) as ds:
                return {name: str(ds.getncattr(name)) for name in ds.ncattrs()}
        if path.suffix == ".tif":
            import rasterio

            with rasterio.open(path) as src:
                return src.tags()
        if path.suffix == ".gpkg":
            import pyogrio

            from seaice_mlflow.tasks.autoice.gis.polygons import LAYER

            return pyogrio.read_info(path, layer=LAYER).get("layer_metadata") or {}
    except Exception:  # noqa: BLE001 - any unreadable product is charted again
        return {}
    return {}


def recorded_signature(path: Path) -> str | None:
    """The signature a product file records, or None (none recorded, or the file cannot be read)."""
    return recorded_attributes(path).get(SIGNATURE)


class ExistingProducts:
    """The ``skip`` rule of :func:`~seaice_mlflow.tasks.autoice.charting.chart_scenes` for a re-run:
    why a scene file need not be charted again, or ``""``."""

    def __init__(self, folder: Path, formats: Sequence[ProductFormat], signature: str):
        self.folder, self.formats, self.signature = Path(folder), tuple(formats), signature

    def __call__(self, path: Path) -> str:
        try:
            name = parse_scene_name(path)
        except SceneError:
            return ""  # not an AI4Arctic name: charting reports it
        if name.file_kind == REFERENCE:
            return ""  # not a scene: charting reports it
        scene_id = name.key
        files = product_files(self.folder, scene_id, self.formats)
        if not all(f.is_file() for f in files):
            return ""
        recorded = [recorded_attributes(f) for f in files[:-1]]  # the products (the quicklook records nothing)
        layers = recorded[0].get(LAYERS_ATTRIBUTE, "").split()  # the same in every product of one signature
        layer_files = [f for f in product_files(self.folder, scene_id, self.formats, layers) if f not in files]
        if any(r.get(SIGNATURE) != self.signature for r in [*recorded, *map(recorded_attributes, layer_files)]):
            return ""
        return f"{scene_id}: its products in {self.folder} are from the same model(s); --overwrite charts it again"
