"""The optical task's data layer: class tables, the three folder layouts, inspect, synthetic photos, commands.

Every folder here is written by hand (small PNGs from numpy arrays) in the layouts of the spec.
"""

import json
import warnings

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from seaice_mlflow.cli import cli
from seaice_mlflow.core.errors import ParameterError, SeaIceError
from seaice_mlflow.tasks.optical.inspect import inspect_folder
from seaice_mlflow.tasks.optical.labels import (
    IGNORE,
    ClassTable,
    PhotoClass,
    PhotoFileError,
    find_class_table,
    read_annotation_config,
    read_class_file,
)
from seaice_mlflow.tasks.optical.plots import overlay
from seaice_mlflow.tasks.optical.readers import (
    decode_label,
    list_photos,
    open_folder,
    read_image,
    read_label,
    read_mask,
    read_pair,
)
from seaice_mlflow.tasks.optical.synthetic import render_photo, synthesize_photos

# A PixelAnnotationTool config: id 0 names the watershed fill, ids not contiguous, keys not in id order.
CONFIG = {
    "labels": {
        "unlabeled": {"categorie": "void", "color": [0, 0, 0], "id": 0, "id_categorie": 0, "name": "unlabeled"},
        "open water": {"categorie": "water", "color": [0, 0, 255], "id": 7, "id_categorie": 1, "name": "open water"},
        "sky": {"categorie": "scene", "color": [135, 206, 235], "id": 2, "id_categorie": 2, "name": "sky"},
        "ice floe": {"categorie": "ice", "color": [255, 255, 0], "id": 4, "id_categorie": 3, "name": "ice floe"},
    }
}


def write_png(path, pixels, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(pixels), mode).save(path)


def rgb_of(ids):
    """R=G=B=id, as the annotation tool writes its masks."""
    return np.repeat(np.asarray(ids, dtype=np.uint8)[..., None], 3, axis=2)


def photo_pixels(h=6, w=8, value=100):
    return np.full((h, w, 3), value, dtype=np.uint8)


def write_config(folder, config=CONFIG):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))


# ---- class tables ----------------------------------------------------------------------------------------


def test_annotation_config_orders_classes_by_id_and_drops_the_fill(tmp_path):
    write_config(tmp_path)
    table = read_annotation_config(tmp_path / "config.json")
    assert table.ids == (2, 4, 7) and table.names == ("sky", "ice floe", "open water")
    assert table.fill_id == 0 and table.hex_colours == ("#87CEEB", "#FFFF00", "#0000FF")
    assert [table.index_of(i) for i in (2, 4, 7)] == [0, 1, 2] and [table.id_of(k) for k in range(3)] == [2, 4, 7]
    lookup = table.index_lookup()
    assert lookup[[0, 2, 4, 7, 3, 255]].tolist() == [255, 0, 1, 2, 255, 255]
    with pytest.raises(KeyError, match="id 3 is not a class"):
        table.index_of(3)
    task = table.to_task()
    assert task.names == ("ice",) and task.ignore_index == IGNORE
    head = task.head("ice")
    assert head.class_names == table.names and head.colours == table.hex_colours and head.kind == "classification"
    assert task.outputs() == {"ice": 3}


def test_a_missing_or_malformed_config_names_the_file(tmp_path):
    photos = tmp_path / "set" / "photos"
    photos.mkdir(parents=True)
    with pytest.raises(PhotoFileError, match=r"has no class table: no config.json or classes\*.txt") as err:
        find_class_table(photos)
    assert str(photos) in str(err.value) and "--classes" in str(err.value)
    (photos / "config.json").write_text("{not json")
    with pytest.raises(PhotoFileError, match="config.json: cannot be read as JSON"):
        find_class_table(photos)
    write_config(photos, {"labels": {"sky": {"id": 1, "color": [1, 2], "name": "sky"}}})
    with pytest.raises(PhotoFileError, match=r"label 'sky' has \"color\" \[1, 2\]"):
        find_class_table(photos)
    write_config(photos, {"labels": {"a": {"id": 3, "color": [1, 2, 3]}, "b": {"id": 3, "color": [1, 2, 3]}}})
    with pytest.raises(PhotoFileError, match="gives id 3 to both 'a' and 'b'"):
        find_class_table(photos)
    write_config(photos, {"labels": {"a": {"id": 300, "color": [1, 2, 3]}}})
    with pytest.raises(PhotoFileError, match="ids are integers 0-254"):
        find_class_table(photos)
    write_config(photos, {"classes": []})
    with pytest.raises(PhotoFileError, match='has no "labels" object'):
        find_class_table(photos)
    (photos / "config.json").unlink()
    write_config(photos.parent)  # found in the parent
    assert find_class_table(photos).source == photos.parent / "config.json"


def test_class_file_reads_every_colour_form(tmp_path):
    path = tmp_path / "classes_ice.txt"
    lines = [
        "background\tblack",
        "anchor ice 0,255,0",
        "frazil_ice 255 0 0",
        "# a comment",
        "slush #10A0fF",
        "",
        "ice\twhite\tanchor ice,frazil_ice",  # a group: skipped
    ]
    path.write_text("\n".join(lines) + "\n")
    table = read_class_file(path)
    assert table.ids == (0, 1, 2, 3) and table.fill_id is None
    assert table.names == ("background", "anchor ice", "frazil_ice", "slush")
    assert table.colours == ((0, 0, 0), (0, 255, 0), (255, 0, 0), (16, 160, 255))
    path.write_text("background 0 0 0\nanchor_ice 0 300 0\n")
    with pytest.raises(PhotoFileError, match=r"line 2 \('anchor_ice 0 300 0'\) is not 'name colour'"):
        read_class_file(path)
    path.write_text("a 1 2 3\na 4 5 6\n")
    with pytest.raises(PhotoFileError, match="names 'a' twice"):
        read_class_file(path)
    path.write_text("water 0 0 255\nice 255 255 255\nall white water,ice\nslush notacolour\n")
    with pytest.raises(PhotoFileError, match=r"line 4 \('slush notacolour'\)"):  # line 3, a group, was skipped
        read_class_file(path)
    for text, problem in (("# only a comment\n", "names no class"), ("sky 1 2\n", "line 1")):
        path.write_text(text)
        with pytest.raises(PhotoFileError, match=problem):
            read_class_file(path)
    with pytest.raises(PhotoFileError, match="missing.txt: does not exist"):
        read_class_file(tmp_path / "missing.txt")
    path.write_bytes(b"\xff\xfe\x00sky")
    with pytest.raises(PhotoFileError, match="cannot be read"):
        read_class_file(path)


def test_class_tables_refuse_what_they_cannot_map(tmp_path):
    sky, ice = PhotoClass(1, "sky", (1, 2, 3)), PhotoClass(2, "ice", (4, 5, 6))
    for classes, fill, problem in (
        ((), None, "at least one class"),
        ((ice, sky), None, "ascending"),
        ((sky, PhotoClass(255, "x", (0, 0, 0))), None, "in 0-254"),
        ((sky, PhotoClass(2, "sky", (0, 0, 0))), None, "names must be distinct"),
        ((sky, ice), 1, "fill id 1 is also a class"),
    ):
        with pytest.raises(ValueError, match=problem):
            ClassTable(classes, fill_id=fill)
    for labels, problem in (
        ({"sky": [1]}, "label 'sky' is not an object"),
        ({"sky": {"id": 1, "color": [1, 2, 3], "name": " "}}, 'has "name"'),
        ({"sky": {"id": True, "color": [1, 2, 3]}}, 'has "id" True'),
        ({"fill": {"id": 0, "color": [0, 0, 0]}}, "names no class"),
    ):
        write_config(tmp_path, {"labels": labels})
        with pytest.raises(PhotoFileError, match=problem):
            read_annotation_config(tmp_path / "config.json")
    with pytest.raises(PhotoFileError, match="config.json: does not exist"):
        read_annotation_config(tmp_path / "none" / "config.json")
    (tmp_path / "classes_a.txt").write_text("sky 1 2 3\n")
    (tmp_path / "classes_b.txt").write_text("sky 1 2 3\n")
    (tmp_path / "config.json").unlink()
    with pytest.raises(PhotoFileError, match=r"holds 2 class files \(classes_a.txt, classes_b.txt\)"):
        find_class_table(tmp_path)


@pytest.mark.parametrize("file", ["config.json", "classes.txt"])
def test_class_names_that_would_share_a_metric_name_are_refused(file, tmp_path):
    """`ice floe` and `ice-floe` would both be logged as test_iou_ice_floe, one overwriting the other."""
    if file == "config.json":
        write_config(tmp_path, {"labels": {**CONFIG["labels"], "ice-floe": {"color": [1, 2, 3], "id": 9}}})
    else:
        (tmp_path / file).write_text("sky 135 206 235\nice floe 255 255 0\nice-floe 1 2 3\n")
    write_png(tmp_path / "a.png", photo_pixels())
    write_png(tmp_path / "a_watershed_mask.png", rgb_of(np.full((6, 8), 2)))  # a valid label: inspect passes
    result = CliRunner().invoke(cli, ["optical", "inspect", str(tmp_path)])
    assert result.exit_code == 1 and f"{tmp_path / file}: names 'ice floe' and 'ice-floe'" in result.output
    assert "ice_floe" in result.output and "Traceback" not in result.output


def test_overlays_have_a_legend_of_the_classes_they_show():
    table = ClassTable((PhotoClass(1, "sky", (135, 206, 235)), PhotoClass(4, "ice floe", (255, 255, 0)),
                        PhotoClass(7, "open water", (0, 0, 255))))  # fmt: skip
    ids = np.full((6, 8), 4, np.uint8)  # predicted label ids: sky and ice floe
    ids[:, :2] = 1
    reference = np.full((6, 8), 1, np.uint8)  # reference class indices: ice floe, a row not labelled
    reference[0] = IGNORE
    [legend] = overlay(photo_pixels(), ids, reference, table, "a photo").legends
    assert [text.get_text() for text in legend.get_texts()] == ["sky", "ice floe", "not labelled"]
    colours = [tuple(round(255 * c) for c in handle.get_facecolor()[:3]) for handle in legend.legend_handles]
    assert colours == [(135, 206, 235), (255, 255, 0), (0, 0, 0)]
    [legend] = overlay(photo_pixels(), ids, None, table, "a photo").legends
    assert [text.get_text() for text in legend.get_texts()] == ["sky", "ice floe"]


# ---- layout 1: PixelAnnotationTool -------------------------------------------------------------------------


def annotation_folder(tmp_path):
    """a.png with a watershed mask (255 boundary, 0 fill), b.jpg with only _mask.png, c.png unlabelled."""
    folder = tmp_path / "cam" / "2024"
    write_config(folder.parent)
    ids = np.full((6, 8), 7, dtype=np.uint8)
    ids[:2] = 2
    ids[2] = 255  # the watershed boundary
    ids[5, 7] = 0  # the fill
    write_png(folder / "a.png", photo_pixels())
    write_png(folder / "a_watershed_mask.png", rgb_of(ids))
    write_png(folder / "a_mask.png", rgb_of(np.zeros((6, 8))))
    write_png(folder / "a_color_mask.png", photo_pixels(value=30))
    write_png(folder / "b.jpg", photo_pixels())
    write_png(folder / "b_mask.png", rgb_of(np.full((6, 8), 4)))
    write_png(folder / "c.png", photo_pixels())
    return folder, ids


def test_annotation_tool_layout(tmp_path):
    folder, ids = annotation_folder(tmp_path)
    opened = open_folder(folder, val_fraction=0.0)
    assert opened.layout == "annotation-tool" and opened.table.names == ("sky", "ice floe", "open water")
    by_name = {p.image.name: p for p in opened.photos}
    assert sorted(by_name) == ["a.png", "b.jpg", "c.png"]  # no name holding _mask.png is a photo
    assert by_name["a.png"].label.name == "a_watershed_mask.png" and by_name["a.png"].label_kind == "watershed"
    assert by_name["b.jpg"].label.name == "b_mask.png" and by_name["b.jpg"].label_kind == "mask"
    assert by_name["c.png"].label is None and by_name["c.png"].label_kind is None
    image, label = read_pair(by_name["a.png"], opened.table)
    assert image.shape == (6, 8, 3) and image.dtype == np.uint8 and label.dtype == np.uint8
    expected = np.where(ids == 2, 0, np.where(ids == 7, 2, 255))
    np.testing.assert_array_equal(label, expected)  # boundary and fill are ignored
    assert (read_label(by_name["b.jpg"], opened.table) == 1).all()
    with pytest.raises(PhotoFileError, match="c.png: has no label"):
        read_label(by_name["c.png"], opened.table)


def test_seeded_split_takes_a_fifth_and_follows_the_seed(tmp_path):
    for k in range(10):
        write_png(tmp_path / f"p{k}.png", photo_pixels(2, 2))
    layout, photos = list_photos(tmp_path, seed=0)
    val = {p.stem for p in photos if p.split == "val"}
    assert layout == "annotation-tool" and len(val) == 2
    assert {p.stem for p in list_photos(tmp_path, seed=0)[1] if p.split == "val"} == val
    draws = {frozenset(p.stem for p in list_photos(tmp_path, seed=s)[1] if p.split == "val") for s in range(6)}
    assert len(draws) > 1 and all(len(d) == 2 for d in draws)
    assert [p.split for p in photos] == ["train"] * 8 + ["val"] * 2  # train first, then by name


# ---- layout 2: images/ + labels/ -------------------------------------------------------------------------------


def images_labels_folder(tmp_path):
    folder = tmp_path / "data"
    write_config(folder)
    for k, stem in enumerate(["ice_01", "ice_02", "ice_03"]):
        write_png(folder / "images" / f"{stem}.jpg", photo_pixels())
        write_png(folder / "labels" / f"{stem}_mask.png", np.full((6, 8), (2, 4, 7)[k], dtype=np.uint8), "L")
    (folder / "validation.txt").write_text("ice_02.jpg\n\n")
    return folder


def test_images_labels_layout_with_validation_list(tmp_path):
    folder = images_labels_folder(tmp_path)
    opened = open_folder(folder)
    assert opened.layout == "images-labels"
    assert [(p.stem, p.split, p.label_kind) for p in opened.photos] == [
        ("ice_01", "train", "ids"),
        ("ice_03", "train", "ids"),
        ("ice_02", "val", "ids"),
    ]
    assert [int(read_label(p, opened.table)[0, 0]) for p in opened.photos] == [0, 2, 1]
    for label in (folder / "labels").iterdir():
        label.rename(tmp_path / label.name)
    assert [(p.label, p.label_kind) for p in list_photos(folder)[1]] == [(None, None)] * 3
    (folder / "validation.txt").write_text("ice_02.jpg\nice_09.jpg\n")
    with pytest.raises(PhotoFileError, match=r"validation.txt: names 1 photo\(s\) not in the folder: ice_09.jpg"):
        open_folder(folder)


def test_ids_missing_from_the_config_are_an_error_naming_file_and_ids(tmp_path):
    folder = images_labels_folder(tmp_path)
    ids = np.full((6, 8), 2, dtype=np.uint8)
    ids[0, :3] = 9
    ids[1, 0] = 12
    write_png(folder / "labels" / "ice_01_mask.png", ids, "L")
    opened = open_folder(folder)
    photo = opened.photos[0]
    with pytest.raises(PhotoFileError, match=r"ice_01_mask.png: holds id 9, id 12 \(4 pixels\), not in the class"):
        read_label(photo, opened.table)
    decoded = decode_label(photo, opened.table)
    assert decoded.unknown == ("id 9", "id 12") and decoded.unknown_pixels == 4
    assert (decoded.indices[0, :3] == 255).all() and decoded.indices[2, 2] == 0


# ---- layout 3: {training,validation}/{images,labels}, class file, colour masks ---------------------------------


def split_folders(tmp_path, colour_label):
    folder = tmp_path / "river"
    (folder).mkdir()
    (folder / "classes_ice.txt").write_text("background\t0 0 0\nanchor_ice\t0 255 0\nfrazil_ice\t255 0 0\n")
    write_png(folder / "training" / "images" / "img_1.tif", photo_pixels())
    write_png(folder / "training" / "labels" / "img_1.png", colour_label)
    write_png(folder / "validation" / "images" / "img_2.tif", photo_pixels())
    write_png(folder / "validation" / "labels" / "img_2.png", np.zeros((6, 8, 3), dtype=np.uint8))
    return folder


def test_split_folders_with_colour_masks_snapped_within_tolerance(tmp_path):
    colours = np.zeros((6, 8, 3), dtype=np.uint8)
    colours[:, :4] = (6, 250, 3)  # anchor ice, off by <= 6
    colours[:, 4:] = (255, 0, 0)  # frazil ice
    colours[0, 0] = (128, 128, 128)  # no class
    folder = split_folders(tmp_path, colours)
    opened = open_folder(folder)
    assert opened.layout == "split-folders" and opened.table.names == ("background", "anchor_ice", "frazil_ice")
    train, val = opened.photos
    assert (train.stem, train.split, train.label_kind, val.split) == ("img_1", "train", "colour", "val")
    decoded = decode_label(train, opened.table)
    assert decoded.indices[0, 0] == 255 and (decoded.indices[1:, :4] == 1).all() and (decoded.indices[:, 4:] == 2).all()
    assert decoded.unknown == ("#808080",) and decoded.unknown_pixels == 1
    strict = decode_label(train, opened.table, tolerance=3)
    assert (strict.indices[:, :4] == 255).all() and strict.unknown_pixels == 24
    assert (read_label(val, opened.table) == 0).all()
    palette = Image.fromarray(np.array([[0, 1], [1, 1]], dtype=np.uint8), "P")
    palette.putpalette([0, 0, 0, 255, 0, 0])
    palette.save(folder / "validation" / "labels" / "img_2.png")  # a palette file read as colours: frazil ice
    assert read_label(open_folder(folder, masks="colour").photos[1], opened.table).tolist() == [[0, 2], [2, 2]]
    assert read_label(open_folder(folder, masks="ids").photos[1], opened.table).tolist() == [[0, 1], [1, 1]]
    forced = open_folder(folder, masks="ids")  # colours read as ids: refused, not misread
    with pytest.raises(PhotoFileError, match="holds colours .* where the folder's labels hold ids"):
        read_label(forced.photos[0], forced.table)


def test_grey_rgb_masks_of_split_folders_are_ids(tmp_path):
    folder = split_folders(tmp_path, rgb_of(np.full((6, 8), 2)))
    opened = open_folder(folder)
    assert [p.label_kind for p in opened.photos] == ["ids", "ids"]
    assert (read_label(opened.photos[0], opened.table) == 2).all()


def test_images_are_read_as_rgb_bytes(tmp_path):
    write_png(tmp_path / "grey.png", np.full((3, 4), 77, dtype=np.uint8), "L")
    write_png(tmp_path / "rgba.png", np.full((3, 4, 4), 200, dtype=np.uint8), "RGBA")
    Image.fromarray(np.full((3, 4), 65535, dtype=np.uint16)).save(tmp_path / "deep.png")
    for name, value in (("grey.png", 77), ("rgba.png", 200), ("deep.png", 255)):
        image = read_image(tmp_path / name)
        assert image.shape == (3, 4, 3) and image.dtype == np.uint8 and (image == value).all(), name
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(PhotoFileError, match="broken.png: cannot be read as an image"):
        read_image(tmp_path / "broken.png")


def test_large_photos_are_read_without_pillows_warning_up_to_the_readers_limit(tmp_path, monkeypatch):
    """Pillow warns above 89 Mpixel and refuses twice that (its guard against decompression bombs from the
    web), so a 10000 x 10000 drone photo printed its raw warning. Its limit is lowered here to stand for that."""
    from seaice_mlflow.tasks.optical import readers

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    write_png(tmp_path / "warned.png", photo_pixels(10, 15, 90))  # 150 px: Pillow's warning
    write_png(tmp_path / "refused.png", photo_pixels(12, 20, 90))  # 240 px: Pillow's error
    write_png(tmp_path / "refused_mask.png", np.full((12, 20), 3, np.uint8), "L")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_image(tmp_path / "warned.png").shape == (10, 15, 3)
        assert read_image(tmp_path / "refused.png").shape == (12, 20, 3)
        assert (read_mask(tmp_path / "refused_mask.png") == 3).all()
    assert Image.MAX_IMAGE_PIXELS == 100  # Pillow's own limit is left as it was
    monkeypatch.setattr(readers, "MAX_PHOTO_PIXELS", 200)
    for read in (read_image, read_mask):
        with pytest.raises(
            PhotoFileError, match=r"refused.*png: is 12x20 px \(0.00024 Mpixel\), more than the 0.0002 Mpixel"
        ):
            read(tmp_path / ("refused.png" if read is read_image else "refused_mask.png"))


def test_folders_and_files_that_cannot_be_read(tmp_path):
    (tmp_path / "file.png").write_bytes(b"")
    with pytest.raises(PhotoFileError, match="file.png: is a file, not a folder"):
        list_photos(tmp_path / "file.png")
    (tmp_path / "empty").mkdir()
    with pytest.raises(PhotoFileError, match="empty: holds no photos"):
        list_photos(tmp_path / "empty")
    with pytest.raises(ValueError, match="masks must be one of auto, ids, colour"):
        list_photos(tmp_path, masks="rgb")
    with pytest.raises(ValueError, match="val_fraction"):
        list_photos(tmp_path, val_fraction=1.0)
    Image.fromarray(np.ones((3, 4), dtype=np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(PhotoFileError, match="float.tif: holds floating-point pixels"):
        read_image(tmp_path / "float.tif")
    # a folder of training photos only; the first label unreadable, the second missing, the third colours
    folder = tmp_path / "river"
    write_config(folder)
    colours = np.zeros((6, 8, 3), dtype=np.uint8)
    colours[..., 2] = 255
    for stem, label in (("a", b"garbage"), ("b", None), ("c", colours), ("d", colours[:5])):
        write_png(folder / "training" / "images" / f"{stem}.png", photo_pixels())
        if isinstance(label, bytes):
            (folder / "training" / "labels").mkdir(exist_ok=True)
            (folder / "training" / "labels" / f"{stem}.png").write_bytes(label)
        elif label is not None:
            write_png(folder / "training" / "labels" / f"{stem}.png", label)
    opened = open_folder(folder)
    assert [(p.stem, p.label_kind) for p in opened.split("train")] == [
        ("a", "colour"),
        ("b", None),
        ("c", "colour"),
        ("d", "colour"),
    ]
    assert opened.split("val") == ()
    assert (read_label(opened.photos[2], opened.table) == 2).all()
    with pytest.raises(PhotoFileError, match="a.png: cannot be read as a label image"):
        read_label(opened.photos[0], opened.table)
    with pytest.raises(PhotoFileError, match="d.png: is 5x8 px but its image is 6x8 px"):
        read_pair(opened.photos[3], opened.table)
    report = inspect_folder(opened)
    assert "cannot be read as a label image" in report.photos[0].problems[0] and report.photos[0].size == [6, 8]
    Image.fromarray(np.full((6, 8), 300, dtype=np.uint16)).save(folder / "training" / "labels" / "c.png")
    with pytest.raises(PhotoFileError, match="c.png: holds values up to 300; label ids are 0-255"):
        read_label(open_folder(folder, masks="ids").photos[2], opened.table)


# ---- inspect ------------------------------------------------------------------------------------------------


def test_inspect_reports_every_problem(tmp_path):
    folder, _ = annotation_folder(tmp_path)
    write_png(folder / "b_mask.png", rgb_of(np.full((5, 8), 4)))  # wrong size
    write_png(folder / "d.png", photo_pixels())
    write_png(folder / "d_watershed_mask.png", rgb_of(np.full((6, 8), 9)))  # id 9 not in the config
    (folder / "e.png").write_bytes(b"garbage")
    write_png(folder / "e_mask.png", rgb_of(np.full((6, 8), 2)))
    report = inspect_folder(open_folder(folder, val_fraction=0.0))
    by_name = {p.image.rsplit("/", 1)[-1]: p for p in report.photos}
    assert by_name["a.png"].ok and by_name["a.png"].classes == ["sky", "open water"]
    assert by_name["a.png"].size == [6, 8] and by_name["a.png"].ignored_fraction == pytest.approx(9 / 48)
    assert by_name["b.jpg"].problems == ["label b_mask.png is 5x8 px but its image is 6x8 px"]
    assert by_name["c.png"].problems == ["has no label"]
    assert "holds ids missing from the class table: id 9 (48 pixels" in by_name["d.png"].problems[0]
    assert "cannot be read as an image" in by_name["e.png"].problems[0] and by_name["e.png"].classes == ["sky"]
    assert not report.ok and report.summary().endswith("1 OK, 4 with problems")


def test_inspect_command_exit_status_and_messages(tmp_path):
    runner = CliRunner()
    folder = images_labels_folder(tmp_path)
    good = runner.invoke(cli, ["optical", "inspect", str(folder)])
    assert good.exit_code == 0, good.output
    assert "OK  " in good.output and "6x8 px, ids label, val" in good.output and "classes: ice floe" in good.output
    assert "images-labels layout, 3 classes from" in good.output and "3 OK, 0 with problems" in good.output

    write_png(folder / "labels" / "ice_03_mask.png", np.full((4, 4), 7, dtype=np.uint8), "L")
    bad = runner.invoke(cli, ["optical", "inspect", str(folder), "--json"])
    assert bad.exit_code == 1
    report = json.loads(bad.output)
    assert report["ok"] is False and report["layout"] == "images-labels"
    assert [p["ok"] for p in report["photos"]] == [True, False, True]
    assert report["photos"][1]["problems"] == ["label ice_03_mask.png is 4x4 px but its image is 6x8 px"]

    (folder / "config.json").unlink()
    missing = runner.invoke(cli, ["optical", "inspect", str(folder)])
    assert missing.exit_code == 1 and "Traceback" not in missing.output
    assert missing.output.startswith(f"Error: {folder}: has no class table") and len(missing.output.splitlines()) == 1
    (folder / "table.txt").write_text("sky 1 2 3\nice floe 4 5 6\nwater 7 8 9\n")
    given = runner.invoke(cli, ["optical", "inspect", str(folder), "--classes", str(folder / "table.txt")])
    assert "table.txt" in given.output and "classes: water" in given.output
    empty = runner.invoke(cli, ["optical", "inspect", str(tmp_path / "nowhere")])
    assert empty.exit_code == 1 and "nowhere: does not exist" in empty.output


# ---- synthetic photos -------------------------------------------------------------------------------------


def test_synth_is_byte_identical_per_seed_and_reads_back(tmp_path):
    first = synthesize_photos(tmp_path / "a", n_images=3, size=(48, 64), seed=5)
    synthesize_photos(tmp_path / "b", n_images=3, size=(48, 64), seed=5)
    synthesize_photos(tmp_path / "c", n_images=3, size=(48, 64), seed=6)
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert len(names) == 13 and "config.json" in names and not any(n.startswith(".") for n in names)
    assert names == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert all((tmp_path / "a" / n).read_bytes() == (tmp_path / "b" / n).read_bytes() for n in names)
    assert (tmp_path / "a" / "photo_0000.png").read_bytes() != (tmp_path / "c" / "photo_0000.png").read_bytes()
    assert [p.name for p in first] == ["photo_0000.png", "photo_0001.png", "photo_0002.png"]

    opened = open_folder(tmp_path / "a")
    assert opened.layout == "annotation-tool" and 7 <= len(opened.table.names) <= 10
    assert opened.table.fill_id == 0 and 0 not in opened.table.ids
    assert {p.label_kind for p in opened.photos} == {"watershed"}
    for photo in opened.photos:
        image, label = read_pair(photo, opened.table)
        assert image.shape == (48, 64, 3) and label.shape == (48, 64)
        assert (label == 255).any() and set(np.unique(label)) <= {*range(len(opened.table.names)), 255}
        scribbles = np.asarray(Image.open(photo.image.with_name(photo.stem + "_mask.png")))
        assert (scribbles[..., 0] == 0).mean() > 0.5 and set(np.unique(scribbles)) <= {0, *opened.table.ids}


def test_synthetic_photos_need_context_not_just_colour():
    """Many classes over a few photos, and a per-pixel colour lookup fitted on 12 photos fails on 4 others."""
    photos = [render_photo(np.random.default_rng([1, i]), (64, 96)) for i in range(16)]
    assert len(set(np.concatenate([ids.ravel() for _, ids in photos]))) >= 8

    def bins(rgb):
        q = rgb.reshape(-1, 3).astype(np.int64) // 16
        return (q[:, 0] * 16 + q[:, 1]) * 16 + q[:, 2]

    fit_bins = np.concatenate([bins(rgb) for rgb, _ in photos[:12]])
    fit_ids = np.concatenate([ids.ravel() for _, ids in photos[:12]])
    counts = np.zeros((4096, 256), dtype=np.int64)
    np.add.at(counts, (fit_bins, fit_ids), 1)
    lookup = np.where(counts.sum(1) > 0, counts.argmax(1), np.bincount(fit_ids).argmax())
    held_out = np.mean([(lookup[bins(rgb)] == ids.ravel()).mean() for rgb, ids in photos[12:]])
    assert held_out < 0.55


def test_synth_checks_its_parameters(tmp_path):
    with pytest.raises(ParameterError, match="option --images: must be at least 1"):
        synthesize_photos(tmp_path, n_images=0)
    with pytest.raises(ParameterError, match="option --size: 16x64 is too small"):
        synthesize_photos(tmp_path, n_images=1, size=(16, 64))
    with pytest.raises(ParameterError, match="option --seed: must be 0 or more"):
        synthesize_photos(tmp_path, n_images=1, seed=-1)
    (tmp_path / "file").write_text("")
    with pytest.raises(SeaIceError, match="is a file; give a folder"):
        synthesize_photos(tmp_path / "file", n_images=1)


def test_synth_command(tmp_path):
    runner = CliRunner()
    out = tmp_path / "photos"
    result = runner.invoke(cli, ["optical", "synth", str(out), "--images", "2", "--size", "40", "56", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [str(out / "photo_0000.png"), str(out / "photo_0001.png")]
    assert Image.open(out / "photo_0001_watershed_mask.png").size == (56, 40)
    assert runner.invoke(cli, ["optical", "synth", str(out)]).exit_code == 2  # --images is required
    small = runner.invoke(cli, ["optical", "synth", str(out), "--images", "1", "--size", "8", "8"])
    assert small.exit_code == 2 and "x>=32" in small.output
    (tmp_path / "file").write_text("")
    onto_file = runner.invoke(cli, ["optical", "synth", str(tmp_path / "file"), "--images", "1"])
    assert onto_file.exit_code == 2 and "is a file" in onto_file.output  # click's own check of OUT_DIR
    for args in (["optical"], ["optical", "inspect"], ["optical", "synth"]):
        assert runner.invoke(cli, [*args, "--help"]).exit_code == 0
