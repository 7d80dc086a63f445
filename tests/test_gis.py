"""GIS products: GeoTIFFs on the tie points (GCPs) or warped, polygons with SIGRID-3 codes, CF metadata, predict."""

from __future__ import annotations

import itertools
import json
import re
import warnings

import mlflow
import netCDF4
import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.vrt
import shapely
from click.testing import CliRunner
from matplotlib.colors import to_rgb
from rasterio import features
from rasterio.control import GroundControlPoint
from rasterio.crs import CRS
from rasterio.transform import GCPTransformer, rowcol
from rasterio.warp import transform as transform_points
from rio_cogeo.cogeo import cog_validate
from scipy import ndimage

from seaice_mlflow.cli import cli
from seaice_mlflow.core.engine import ChartPrediction
from seaice_mlflow.core.errors import ParameterError
from seaice_mlflow.tasks.autoice.charts import CHART_NAMES, CHARTS, IGNORE_INDEX
from seaice_mlflow.tasks.autoice.files.eggcode import (
    PARTIAL_FORM,
    PARTIAL_STAGE,
    POLYGON_CODES_HEADER,
    UNKNOWN,
    decode_polygons,
    format_polygon_codes,
    parse_polygon_codes,
)
from seaice_mlflow.tasks.autoice.files.reader import read_scene
from seaice_mlflow.tasks.autoice.gis import GisOptions, check_options, parse_formats
from seaice_mlflow.tasks.autoice.gis.georef import TPS, polynomial_miss, tie_point_positions, warp_method
from seaice_mlflow.tasks.autoice.gis.polygons import LAYER, chart_regions, combined_codes, simplified
from seaice_mlflow.tasks.autoice.gis.quicklook import map_figure
from seaice_mlflow.tasks.autoice.gis.sigrid import SIGRID_FIELDS, class_codes, sigrid_table
from seaice_mlflow.tasks.autoice.plots import quicklook, save
from seaice_mlflow.tasks.autoice.products import masked, write_products
from tests.conftest import prep_files
from tests.tiny_model import train_tiny_model

EXPERIMENT = "gis-test"
FAST = ["--device", "cpu", "--tile", "64", "--overlap", "32"]
KM_PER_DEGREE = 111.2
PIXEL_M = 80.0


@pytest.fixture(scope="module")
def scene(ready_dir):
    return read_scene(prep_files(ready_dir)[0])


def patchy_charts(scene, seed: int = 0) -> dict[str, np.ndarray]:
    """Charts with many curved regions (a smooth random field cut into classes), blank outside the swath;
    SIC 0 goes with SOD 0 and FLOE 0 as in the AutoICE charts, and at 40 % ice a model's open-water stage
    and form (SOD 0, FLOE 0 on an ice polygon)."""
    field = ndimage.gaussian_filter(np.random.default_rng(seed).normal(size=scene.shape), 6)
    sic = np.digitize(field, np.quantile(field, [0.3, 0.45, 0.6, 0.8])).astype(np.uint8) * 2 + 2
    sic[field < np.quantile(field, 0.3)] = 0
    stage = np.where(sic <= 4, 0, np.where(sic > 6, 4, 3)).astype(np.uint8)
    form = np.where(sic <= 4, 0, np.where(sic == 10, 5, 2)).astype(np.uint8)
    valid = scene.sar_valid
    return {"SIC": masked(sic, valid), "SOD": masked(stage, valid), "FLOE": masked(form, valid)}


def write(scene, folder, formats=("netcdf", "geotiff", "vector"), **gis):
    charts = patchy_charts(scene)
    files = write_products(
        folder, scene, ChartPrediction(charts), {"model_uri": "test"}, True, formats, GisOptions(**gis)
    )
    return charts, {p.name.removeprefix(f"{scene.scene_id}_"): p for p in files}


def tie_points(scene):
    lines, samples = tie_point_positions(scene.shape, scene.latitude.shape)
    for i, j in itertools.product(range(len(lines)), range(len(samples))):
        yield lines[i], samples[j], float(scene.latitude[i, j]), float(scene.longitude[i, j])


def ground_m(lat: float, lon: float, x: float, y: float) -> float:
    """Metres between (lat, lon) and longitude ``x``, latitude ``y`` (locally flat Earth)."""
    north, east = (y - lat) * KM_PER_DEGREE, (x - lon) * KM_PER_DEGREE * np.cos(np.deg2rad(lat))
    return float(np.hypot(north, east) * 1000)


def test_geotiff_pixel_at_a_tie_point_lands_on_its_lat_lon(scene, tmp_path):
    charts, files = write(scene, tmp_path, ("geotiff",))
    assert sorted(files) == sorted(f"{c}.tif" for c in CHART_NAMES)
    with rasterio.open(files["SOD.tif"]) as tif:
        gcps, crs = tif.gcps
        band = tif.read(1)
    assert crs == CRS.from_epsg(4326) and len(gcps) == scene.latitude.size
    np.testing.assert_array_equal(band, charts["SOD"])
    for tps in (True, False):  # thin-plate spline (our warps) and GDAL's default polynomial (GIS readers)
        with GCPTransformer(gcps, tps=tps) as transformer:
            for line, sample, lat, lon in tie_points(scene):
                # pixel/line (line + 0.5, sample + 0.5) is the tie point: its lat/lon within half a pixel
                assert ground_m(lat, lon, *transformer.xy(line, sample)) < PIXEL_M / 2, (tps, line, sample)
                row, col = transformer.rowcol(lon, lat, op=float)  # and back
                assert abs(row - (line + 0.5)) < 0.5 and abs(col - (sample + 0.5)) < 0.5, (tps, line, sample)
                pixel = int(np.floor(line + 0.5)), int(np.floor(sample + 0.5))  # the pixel holding the tie point
                off_m = np.hypot(pixel[0] - line, pixel[1] - sample) * PIXEL_M  # its centre is this far off
                assert ground_m(lat, lon, *transformer.xy(*pixel)) < off_m + PIXEL_M / 2


def test_warps_use_the_polynomial_only_where_it_fits_the_tie_points():
    lines, samples = np.meshgrid(np.linspace(0, 999, 21), np.linspace(0, 1199, 21), indexing="ij")
    plane = [GroundControlPoint(row=r + 0.5, col=c + 0.5, x=80.0 * c, y=-80.0 * r, z=0.0)
             for r, c in zip(lines.ravel(), samples.ravel())]  # fmt: skip
    wavy = [GroundControlPoint(row=g.row, col=g.col, x=g.x + 500 * np.sin(g.y / 8000), y=g.y, z=0.0) for g in plane]
    assert polynomial_miss(plane) < 1e-6 and warp_method(plane, 80.0) == {}
    assert polynomial_miss(wavy) > 20 and warp_method(wavy, 80.0) == TPS  # no polynomial follows it


def test_colour_table_class_names_and_nodata(scene, tmp_path):
    charts, files = write(scene, tmp_path, ("geotiff",))
    for chart in CHART_NAMES:
        with rasterio.open(files[f"{chart}.tif"]) as tif:
            assert tif.nodata == IGNORE_INDEX and tif.dtypes == ("uint8",) and tif.count == 1
            colours = tif.colormap(1)
            tags, band = tif.tags(), tif.tags(1)
            assert tif.descriptions[0].startswith(f"{chart}: {CHARTS[chart].long_name}")
            assert np.all(tif.read(1)[~scene.sar_valid] == IGNORE_INDEX)
        for k, colour in enumerate(CHARTS[chart].colours):
            assert colours[k] == (*(round(255 * c) for c in to_rgb(colour)), 255)
        assert colours[IGNORE_INDEX][3] == 0  # nodata is transparent
        assert json.loads(band["CLASS_NAMES"]) == list(CHARTS[chart].class_names) and band["CHART"] == chart
        assert tags["scene_id"] == scene.scene_id and tags["model_uri"] == "test" and "GEOREFERENCING" in tags
        assert cog_validate(files[f"{chart}.tif"], quiet=True)[:2] == (True, [])  # a Cloud Optimized GeoTIFF
    assert not list(tmp_path.glob(".*")) and not list(tmp_path.glob("*.aux.xml"))  # atomic, no side files


def test_warp_to_polar_stereographic_grid(scene, tmp_path):
    charts, files = write(scene, tmp_path, ("geotiff",), crs="EPSG:3413")
    with rasterio.open(files["SIC.tif"]) as tif:
        assert tif.crs == CRS.from_epsg(3413) and not tif.gcps[0]
        assert tif.transform.b == tif.transform.d == 0 and 60 < tif.res[0] < 100  # north up, about 80 m
        grid, transform = tif.read(1), tif.transform
        assert tif.colormap(1)[3] == (*(round(255 * c) for c in to_rgb(CHARTS["SIC"].colours[3])), 255)
    classes = set(np.unique(charts["SIC"]))
    assert set(np.unique(grid)) <= classes and len(set(np.unique(grid))) >= len(classes) - 1
    valid_km2 = (grid != IGNORE_INDEX).sum() * abs(transform.a * transform.e) / 1e6
    assert valid_km2 == pytest.approx(scene.sar_valid.sum() * (PIXEL_M / 1000) ** 2, rel=0.1)
    # the class at each tie point's map position is the chart's class of the pixel holding it
    points = list(tie_points(scene))
    xs, ys = transform_points(CRS.from_epsg(4326), CRS.from_epsg(3413), [p[3] for p in points], [p[2] for p in points])
    rows, cols = rowcol(transform, xs, ys)
    expected = np.array([charts["SIC"][round(line), round(sample)] for line, sample, _, _ in points])
    rows, cols = np.asarray(rows), np.asarray(cols)
    inside = (rows >= 0) & (rows < grid.shape[0]) & (cols >= 0) & (cols < grid.shape[1])
    found = grid[rows[inside], cols[inside]]
    assert np.mean(found == expected[inside]) > 0.9 and inside.mean() > 0.95
    _, coarse = write(scene, tmp_path / "coarse", ("geotiff",), crs="EPSG:3413", pixel_size=200)
    with rasterio.open(coarse["SIC.tif"]) as tif:
        assert tif.res == (200.0, 200.0)
    _, fine = write(scene, tmp_path / "fine", ("geotiff",), crs="EPSG:3413", pixel_size=20)
    with rasterio.open(fine["SOD.tif"]) as tif:  # large enough for overviews: a valid COG with them
        assert tif.res == (20.0, 20.0) and tif.overviews(1) and tif.block_shapes == [(256, 256)]
    assert all(cog_validate(f, quiet=True)[:2] == (True, []) for f in (*fine.values(), *files.values()))


def test_polygons_reproduce_the_chart(scene):
    charts = patchy_charts(scene)
    codes, valid = combined_codes(charts)
    exact = chart_regions(charts, min_pixels=0)
    back = features.rasterize(zip(exact.polygons, range(len(exact.polygons))), scene.shape, fill=-1, dtype="int32")
    for chart in CHART_NAMES:
        restored = np.where(back >= 0, exact.classes[chart][np.maximum(back, 0)], IGNORE_INDEX)
        np.testing.assert_array_equal(restored, charts[chart])
    assert exact.pixels.sum() == valid.sum()
    # specks are merged into their largest neighbour: few polygons, >= 99 % of the pixels unchanged
    noisy = {c: v.copy() for c, v in charts.items()}
    specks = np.random.default_rng(1).random(scene.shape) < 0.002
    noisy["SIC"][specks & valid] = 1
    regions = chart_regions(noisy, min_pixels=16)
    assert len(regions.polygons) <= len(exact.polygons)
    back = features.rasterize(zip(regions.polygons, range(len(regions.polygons))), scene.shape, fill=-1, dtype="int32")
    restored, _ = combined_codes(
        {c: np.where(back >= 0, regions.classes[c][np.maximum(back, 0)], IGNORE_INDEX) for c in CHART_NAMES}
    )
    noisy_codes, _ = combined_codes(noisy)
    assert np.mean(restored[valid] == noisy_codes[valid]) >= 0.99 and np.all(back[~valid] == -1)
    # simplified together: valid, no overlaps, the same area
    simple = simplified(exact.polygons, 1.0)
    assert shapely.is_valid(simple).all() and shapely.get_num_coordinates(simple).sum() < 0.7 * sum(
        shapely.get_num_coordinates(exact.polygons)
    )
    union = shapely.union_all(simple)
    assert union.area == pytest.approx(shapely.area(simple).sum(), rel=1e-6)
    assert union.area == pytest.approx(valid.sum(), rel=0.02)


def undetermined_on_ice(classes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The charts SIGRID-3 codes can say: the open-water stage or form of a polygon that is not water
    (POLY_TYPE I: SIC > 0 or unknown) is undetermined (255)."""
    ice = classes["SIC"] != 0
    return {c: np.where(ice & (v == 0), IGNORE_INDEX, v) if c != "SIC" else v for c, v in classes.items()}


def test_sigrid_codes_are_the_class_tables_codes_and_decode_to_the_same_classes():
    # the codes the challenge's class tables name: 100 % is 10/10 (92), class 4 thick first-year ice (93)
    assert class_codes("SIC") == (0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 92)
    assert class_codes("SOD") == (0, 81, 83, 87, 93, 95)
    assert class_codes("FLOE") == (0, 2, 3, 4, 5, 6, 10)
    ranges = [[*range(CHARTS[c].n_classes), IGNORE_INDEX] for c in CHART_NAMES]
    combos = [c for c in itertools.product(*ranges) if c[0] != 0 or c == (0, 0, 0)]
    sic, sod, floe = (np.array(v, dtype=np.uint8) for v in zip(*combos))
    codes, poly_type = sigrid_table(sic, sod, floe)
    rows = format_polygon_codes(codes, poly_type)
    assert rows[0] == POLYGON_CODES_HEADER and rows[1].endswith(";W")  # (0, 0, 0): a water polygon
    table = parse_polygon_codes(rows)
    ice = table.poly_type == "I"
    stage, form = table.codes[:, PARTIAL_STAGE[0]], table.codes[:, PARTIAL_FORM[0]]
    assert ice.sum() == len(combos) - 1 and not np.any(ice & ((stage == 0) | (form == 0)))  # no ice-free pair
    assert set(stage[ice & (sod == 0)]) == set(form[ice & (floe == 0)]) == {UNKNOWN}  # undetermined
    decoded = decode_polygons(table)
    expected = undetermined_on_ice({"SIC": sic, "SOD": sod, "FLOE": floe})
    for chart in CHART_NAMES:
        np.testing.assert_array_equal(decoded[chart], expected[chart], err_msg=chart)


def test_vector_file_has_sigrid_attributes_and_geometry(scene, tmp_path):
    charts, files = write(scene, tmp_path, ("vector",))
    info = pyogrio.read_info(files["charts.gpkg"], layer=LAYER)
    assert info["crs"] == "EPSG:4326" and info["geometry_type"] == "Polygon"
    assert list(info["fields"]) == [*SIGRID_FIELDS, "SIC", "SIC_NAME", "SOD", "SOD_NAME", "FLOE", "FLOE_NAME", "PIXELS"]
    meta, _, geometry, columns = pyogrio.raw.read(files["charts.gpkg"], layer=LAYER)
    table = dict(zip(meta["fields"], columns))
    polygons = shapely.from_wkb(geometry)
    rows = [";".join(["1", *(str(table[f][k]) for f in SIGRID_FIELDS)]) for k in range(len(polygons))]
    # read back through the egg-code conversion: the charts written, an open-water stage on ice undetermined
    decoded = decode_polygons(parse_polygon_codes([POLYGON_CODES_HEADER, *rows]))
    expected = undetermined_on_ice({c: table[c].astype(np.uint8) for c in CHART_NAMES})
    for chart in CHART_NAMES:
        np.testing.assert_array_equal(decoded[chart], expected[chart], err_msg=chart)
        names = [CHARTS[chart].class_names[k] if k != IGNORE_INDEX else "" for k in table[chart]]
        assert list(table[f"{chart}_NAME"]) == names
    assert set(table["POLY_TYPE"]) == {"I", "W"} and all(table["CA"] == "-9")
    ice = table["POLY_TYPE"] == "I"
    assert not np.any(ice & ((table["SA"] == "00") | (table["FA"] == "00")))  # no ice-free stage on ice
    assert np.any(ice & (table["SOD"] == 0)) and set(table["SA"][ice & (table["SOD"] == 0)]) == {"99"}
    assert set(table["CT"][table["SIC"] == 10]) == {"92"} and set(table["SA"][table["SOD"] == 4]) == {"93"}
    codes_note = pyogrio.read_info(files["charts.gpkg"])["layer_metadata"]["sigrid3_codes"]
    for said in ("SIC 10 (100%): CT 92", "also 91", "SOD 4 (thick first-year ice): SA 93", "also 86, 91", "99"):
        assert said in codes_note, said
    assert table["PIXELS"].min() >= 16 and table["PIXELS"].sum() == scene.sar_valid.sum()
    # each tie point in the swath lies in a polygon with the classes of its pixel
    points = [(shapely.Point(lon, lat), round(line), round(sample)) for line, sample, lat, lon in tie_points(scene)]
    tree = shapely.STRtree(polygons)
    hits = []
    for point, row, col in points:
        if charts["SIC"][row, col] == IGNORE_INDEX:
            continue
        found = tree.query(point, predicate="intersects")
        hits.append(len(found) > 0 and table["SIC"][found[0]] == charts["SIC"][row, col])
    assert len(hits) > 20 and np.mean(hits) > 0.9
    assert pyogrio.read_info(files["charts.gpkg"])["layer_metadata"]["scene_id"] == scene.scene_id
    _, projected = write(scene, tmp_path / "3413", ("vector",), crs="EPSG:3413")
    info = pyogrio.read_info(projected["charts.gpkg"])
    assert info["crs"] == "EPSG:3413" and info["features"] == len(polygons)
    assert not list(tmp_path.glob(".*"))


def test_netcdf_product_is_located_by_gdal_and_cf_clean(scene, tmp_path):
    charts, files = write(scene, tmp_path, ("netcdf",))
    path = files["charts.nc"]
    with netCDF4.Dataset(path) as ds:
        for name in ("sar_grid2d_latitude", "sar_grid2d_longitude"):  # on the tie-point line and sample axes
            assert ds[name].dimensions == ("sar_grid2d_line", "sar_grid2d_sample")
        np.testing.assert_allclose(ds["sar_grid2d_line"][:], np.linspace(0, scene.shape[0] - 1, 21))
        np.testing.assert_allclose(ds["sar_grid2d_sample"][:], np.linspace(0, scene.shape[1] - 1, 21))
        for name in (*CHART_NAMES, "latitude", "longitude"):  # every chart located pixel by pixel
            assert ds[name].dimensions == ("sar_lines", "sar_samples")
        assert all(ds[c].coordinates.split() == ["time", "latitude", "longitude"] for c in CHART_NAMES)
        start, stop = re.search(r"_(\d{8}T\d{6})_(\d{8}T\d{6})_", scene.attrs["original_id"]).groups()
        assert ds["time"].standard_name == "time" and ds.time_coverage_start == f"{scene.date:%Y-%m-%dT%H:%M:%S}Z"
        assert ds.time_coverage_start.replace("-", "").replace(":", "").startswith(start)
        assert ds.time_coverage_end.replace("-", "").replace(":", "") == f"{stop}Z"  # the original S1 file's stop
        assert netCDF4.num2date(ds["time"][:], ds["time"].units) == scene.date
        assert ds.geospatial_lat_min == pytest.approx(scene.latitude.min())
        assert ds.geospatial_lon_max == pytest.approx(scene.longitude.max())
        outline = shapely.from_wkt(ds.geospatial_bounds)
        assert outline.is_valid and outline.contains(shapely.Point(scene.longitude[10, 10], scene.latitude[10, 10]))
    with warnings.catch_warnings():  # its deprecated SOS checkers warn when loaded
        warnings.simplefilter("ignore", DeprecationWarning)
        from compliance_checker.runner import CheckSuite

        suite = CheckSuite()
        suite.load_all_available_checkers()
    dataset = suite.load_dataset(str(path))

    def failed(checker: str) -> dict[str, list[str]]:
        results, errors = suite.run_all(dataset, [checker], skip_checks=[])[checker]
        assert not errors
        return {r.name: r.msgs for r in results if (r.value if isinstance(r.value, bool) else r.value[0] < r.value[1])}

    # GDAL (rasterio) places every chart: geolocation arrays of its pixels, warped to where the tie points are
    for chart in CHART_NAMES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)  # arrays, not a geotransform
            with rasterio.open(f"netcdf:{path}:{chart}") as nc:
                assert nc.crs == CRS.from_epsg(4326)
                assert nc.tags(ns="GEOLOCATION")["X_DATASET"].endswith(":longitude")
                with rasterio.vrt.WarpedVRT(nc, crs="EPSG:4326") as warped:
                    left, bottom, right, top = warped.bounds
                    values = warped.read(1)
    assert left == pytest.approx(scene.longitude.min(), abs=0.01) and top == pytest.approx(
        scene.latitude.max(), abs=0.01
    )
    assert right == pytest.approx(scene.longitude.max(), abs=0.01)
    assert bottom == pytest.approx(scene.latitude.min(), abs=0.01)
    assert set(np.unique(values)) <= set(np.unique(charts["FLOE"]))
    # the IOOS checker of the CF version the product declares finds nothing; CF-1.8 had no unsigned types
    assert failed("cf:1.9") == {}
    assert list(failed("cf:1.8")) == ["§2.2 Data Types", "§2.6 Attributes"]
    assert all("uint8" in m and m.split()[2] in CHART_NAMES for m in failed("cf:1.8")["§2.2 Data Types"])


def test_polygon_attributes_survive_a_shapefile_export(scene, tmp_path):
    charts = patchy_charts(scene)
    kinds = {"SIC": ("spread", "confidence_uncalibrated"), "SOD": ("confidence", "entropy", "disagreement"),
             "FLOE": ("confidence", "entropy", "disagreement", "confidence_uncalibrated")}  # fmt: skip
    layers = {f"{c}_{k}": np.full(scene.shape, 0.5, np.float32) for c, names in kinds.items() for k in names}
    files = write_products(tmp_path, scene, ChartPrediction(charts, uncertainty=layers), {}, True, ("vector",))
    fields = list(pyogrio.read_info(files[0])["fields"])
    assert {"SOD_entr", "FLOE_disag", "FLOE_uconf", "SIC_spread"} <= set(fields)
    assert [f for f in fields if len(f) > 10] == []  # a Shapefile's dBase field names
    described = pyogrio.read_info(files[0])["layer_metadata"]["attributes"]
    assert "SOD_entr: mean SOD_entropy over the polygon (%)" in described
    meta, _, geometry, columns = pyogrio.raw.read(files[0])
    shapefile = tmp_path / "charts.shp"
    pyogrio.raw.write(shapefile, geometry, columns, meta["fields"], driver="ESRI Shapefile",
                      geometry_type="Polygon", crs=meta["crs"])  # fmt: skip
    assert list(pyogrio.read_info(shapefile)["fields"]) == fields


def test_quicklooks_have_a_legend_of_the_classes(scene, tmp_path):
    charts = patchy_charts(scene)
    reference = {c: np.where(v == IGNORE_INDEX, v, np.minimum(v, 1)).astype(np.uint8) for c, v in charts.items()}
    figure = quicklook(scene.sar["nersc_sar_primary"], charts, reference, "legend")
    for chart in CHART_NAMES:
        present = sorted((set(np.unique(charts[chart])) | set(np.unique(reference[chart]))) - {IGNORE_INDEX})
        legends = [
            ax.get_legend() for ax in figure.axes if ax.get_legend() and chart in ax.get_legend().get_title().get_text()
        ]
        assert len(legends) == 1, chart
        labels = [t.get_text() for t in legends[0].get_texts()]
        assert labels == [*(CHARTS[chart].class_names[k] for k in present), "no data (land, off swath)"], chart
        colours = [h.get_facecolor()[:3] for h in legends[0].legend_handles][: len(present)]
        np.testing.assert_allclose(colours, [to_rgb(CHARTS[chart].colours[k]) for k in present])
    assert save(figure, tmp_path / "quicklook.png").stat().st_size > 10_000


def test_map_quicklook(scene, tmp_path):
    _, gcp = write(scene, tmp_path / "gcp", ("geotiff",))
    _, warped = write(scene, tmp_path / "3413", ("geotiff",), crs="EPSG:3413")
    figure = map_figure([gcp["SOD.tif"], warped["SOD.tif"]])
    geographic, projected = figure.axes[:2]
    assert geographic.get_xlabel() == "longitude (°E)"
    assert all("°" in t.get_text() for t in projected.get_xticklabels() + projected.get_yticklabels())
    assert projected.get_xticklabels() and projected.get_yticklabels()
    assert save(figure, tmp_path / "map.png").stat().st_size > 10_000


def test_options_are_checked():
    assert parse_formats("GeoTIFF, vector") == ("geotiff", "vector") and parse_formats(["vector,netcdf"])[0] == "netcdf"
    with pytest.raises(ParameterError, match=r"option --format: unknown format 'shp'; give a comma list of netcdf"):
        parse_formats("netcdf,shp")
    with pytest.raises(ParameterError, match="option --format: no format given"):
        parse_formats(" ")
    assert check_options(GisOptions(crs="epsg:3413")).crs == "EPSG:3413"
    with pytest.raises(ParameterError, match=r"option --crs: 'EPSG:999999' is not a coordinate reference system"):
        check_options(GisOptions(crs="EPSG:999999"))
    with pytest.raises(ParameterError, match="option --pixel-size"):
        check_options(GisOptions(pixel_size=-1))


@pytest.fixture(scope="module")
def model_uri(store_uri, ready_dir, tmp_path_factory) -> str:
    return train_tiny_model(ready_dir, tmp_path_factory.mktemp("gis-train"), store_uri, EXPERIMENT)[0]


def test_predict_writes_geotiffs_and_polygons(model_uri, tracking, test_dir, tmp_path):
    scene_file = prep_files(test_dir)[0]
    out = tmp_path / "charts"
    args = ["--scenes", str(scene_file), "--out", str(out), "--format", "geotiff,vector", "--crs", "EPSG:3413"]
    result = CliRunner().invoke(cli, ["predict", "--model-uri", model_uri, *args, *FAST])
    assert result.exit_code == 0, result.output
    scene_id = read_scene(scene_file).scene_id
    names = [f"{scene_id}_{c}.tif" for c in CHART_NAMES] + [f"{scene_id}_charts.gpkg", f"{scene_id}_charts.png"]
    assert sorted(p.name for p in out.iterdir()) == sorted(names)  # no netCDF, no temporary files
    assert f"wrote   {out / names[0]}, {names[1]}, {names[2]}, {names[3]} (" in result.output
    with rasterio.open(out / names[0]) as tif:
        assert tif.crs == CRS.from_epsg(3413) and tif.tags()["model_uri"] == model_uri
    assert pyogrio.read_info(out / names[3])["crs"] == "EPSG:3413"
    run_id = re.search(r"^run ([0-9a-f]{32})", result.output, re.M).group(1)
    params = mlflow.get_run(run_id).data.params
    assert params["format"] == "geotiff,vector" and params["crs"] == "EPSG:3413" and params["pixel_size"] == "0.0"
    listed = json.loads(mlflow.artifacts.load_text(f"runs:/{run_id}/outputs.json"))
    assert sorted(listed["files"][0]["outputs"]) == sorted(str(out / n) for n in names)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--format", "netcdf,shapefile"], "option --format: unknown format 'shapefile'"),
        (["--crs", "EPSG:999999"], "option --crs: 'EPSG:999999' is not a coordinate reference system"),
        (["--pixel-size", "-5"], "option --pixel-size: -5.0 is not a size"),
        (["--pixel-size", "100"], "option --pixel-size: applies to GeoTIFFs warped to a map grid: give --crs"),
        # a grid with (almost) no pixel over the scene, metres given to a degree CRS, more than the memory
        (["--crs", "EPSG:3413", "--pixel-size", "1e9"], "option --pixel-size: 1e+09 metre gives 1 x 1 pixels over"),
        (["--crs", "EPSG:4326", "--pixel-size", "100"], "EPSG:4326 counts in degree"),
        (["--crs", "EPSG:3413", "--pixel-size", "0.01"], "GiB of memory"),
    ],
)
def test_bad_format_crs_or_pixel_size_fails_before_any_scene(tracking, test_dir, tmp_path, options, message):
    out = tmp_path / "charts"
    extra = [] if options[0] == "--format" else ["--format", "geotiff"]
    result = CliRunner().invoke(
        cli,
        ["predict", "--model-uri", "models:/no-such-model/1", "--scenes", str(test_dir), "--out", str(out), *FAST]
        + extra
        + options,
    )
    assert result.exit_code == 1 and message in result.output, result.output
    if options[-2] == "--pixel-size" and options[0] == "--crs":  # names the option's unit and what would do
        assert re.search(r"give a size of (at most|at least) [0-9.e+-]+ (metre|degree)", result.output), result.output
    assert "Traceback" not in result.output and "no-such-model" not in result.output and not out.exists()
