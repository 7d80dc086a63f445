"""The class table of a photo data set, read from the file its user gives, and the task it makes.

Two files are read unchanged:

- PixelAnnotationTool's ``config.json``: ``{"labels": {"<name>": {"categorie", "color": [r, g, b], "id",
  "id_categorie", "name"}}}``. A pixel's value is the ``id``. Id 0 is the tool's watershed fill
  ("unmarked"): it is never a class, an entry with id 0 only names it, and its pixels are ignored.
- The river-ice class file: one class per line, ``name colour``, the id being the line's number from 0.
  The colour may be ``r g b``, ``r,g,b``, ``#RRGGBB`` or a colour name (Pillow's CSS table: ``green``
  is 0,128,0; give numbers for colour-indexed masks). Fields may be split by tabs or spaces; a line
  whose last field lists classes (``ice white anchor_ice,frazil_ice``) groups them and is skipped.

Class index = position of the id among the table's ids in ascending order (ids 1, 4, 7 -> indices 0,
1, 2): :meth:`ClassTable.index_of` and :meth:`ClassTable.id_of` convert. 255 is the ignore value of
class maps; a pixel of the fill id or 255 becomes 255.

A class is logged as the MLflow metrics ``test_iou_<key>`` and ``test_f1_<key>``, the key being its name
with ``_`` for every character but letters and digits (:func:`metric_key`). A file whose names share a key
(``ice floe`` and ``ice-floe``) is refused naming both: one class's scores would overwrite the other's,
and numbering the keys instead would make a metric's name depend on the order of the file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import ImageColor

from seaice_mlflow.core.errors import SeaIceError, first_line
from seaice_mlflow.core.task import Head, TaskSpec

#: Value of unlabelled pixels in class maps (and of watershed boundaries in label files).
IGNORE = 255
#: PixelAnnotationTool's watershed fill (tool issue 46): never a class.
WATERSHED_FILL = 0
CONFIG_NAME = "config.json"
CLASS_FILE_GLOB = "classes*.txt"
#: Largest per-channel difference between a mask colour and a class colour that still snaps to it.
COLOUR_TOLERANCE = 10

RGB = tuple[int, int, int]
_GIVE = "give the class table with --classes (PixelAnnotationTool's config.json or a 'name colour' file)"


class PhotoFileError(SeaIceError):
    """A photo, label or class file cannot be used; the message names the file, the problem and what to do."""

    def __init__(self, path: str | Path, problem: str, remedy: str = ""):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}. {remedy}" if remedy else f"{self.path}: {problem}")


@dataclass(frozen=True)
class PhotoClass:
    """One class of a table: the pixel value in label files, its name, display colour and category."""

    id: int
    name: str
    colour: RGB
    category: str = ""


@dataclass(frozen=True)
class ClassTable:
    """The classes of a data set in ascending id order, the fill id (ignored, never a class) and the file read."""

    classes: tuple[PhotoClass, ...]
    fill_id: int | None = None
    source: Path | None = None

    def __post_init__(self) -> None:
        ids = [c.id for c in self.classes]
        if not ids:
            raise ValueError("a class table needs at least one class")
        if ids != sorted(set(ids)) or not 0 <= ids[0] <= ids[-1] < IGNORE:
            raise ValueError(f"class ids must be distinct, ascending and in 0-254, got {ids}")
        if len({c.name for c in self.classes}) != len(ids):
            raise ValueError(f"class names must be distinct, got {[c.name for c in self.classes]}")
        if self.fill_id in ids:
            raise ValueError(f"the fill id {self.fill_id} is also a class")

    @property
    def ids(self) -> tuple[int, ...]:
        return tuple(c.id for c in self.classes)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)

    @property
    def colours(self) -> tuple[RGB, ...]:
        return tuple(c.colour for c in self.classes)

    @property
    def hex_colours(self) -> tuple[str, ...]:
        """One ``#RRGGBB`` per class, the form of :attr:`Head.colours`."""
        return tuple("#{:02X}{:02X}{:02X}".format(*c.colour) for c in self.classes)

    def index_of(self, class_id: int) -> int:
        """The class index of a label id (its position among the ascending ids)."""
        try:
            return self.ids.index(class_id)
        except ValueError:
            raise KeyError(f"id {class_id} is not a class of {self.describe()}") from None

    def id_of(self, index: int) -> int:
        """The label id of a class index."""
        return self.classes[index].id

    def index_lookup(self) -> np.ndarray:
        """A (256,) uint8 table: label id -> class index; the fill id, 255 and unknown ids -> 255."""
        lookup = np.full(256, IGNORE, dtype=np.uint8)
        lookup[list(self.ids)] = np.arange(len(self.ids), dtype=np.uint8)
        return lookup

    def colour_lookup(self) -> np.ndarray:
        """A (256, 3) uint8 table: label id -> its class colour (black for the other values)."""
        lookup = np.zeros((256, 3), dtype=np.uint8)
        lookup[list(self.ids)] = self.colours
        return lookup

    def unknown_ids(self, values: np.ndarray) -> dict[int, int]:
        """Pixel count of each id in ``values`` that is neither a class, the fill id nor 255."""
        counts = np.bincount(values.ravel(), minlength=256)
        known = {*self.ids, IGNORE} | ({self.fill_id} if self.fill_id is not None else set())
        return {int(i): int(counts[i]) for i in np.flatnonzero(counts) if int(i) not in known}

    def snap_colours(self, rgb: np.ndarray, tolerance: int = COLOUR_TOLERANCE) -> tuple[np.ndarray, dict[RGB, int]]:
        """Class indices (H, W) of a colour-indexed mask (H, W, 3): each pixel takes the class of the
        nearest colour within ``tolerance`` on every channel, else 255. Also returns the pixel count of
        each colour that matched no class."""
        packed = (rgb[..., 0].astype(np.int32) << 16) | (rgb[..., 1].astype(np.int32) << 8) | rgb[..., 2]
        unique, inverse = np.unique(packed.ravel(), return_inverse=True)
        colours = np.stack([(unique >> 16) & 255, (unique >> 8) & 255, unique & 255], axis=1)
        table = np.asarray(self.colours, dtype=np.int32)
        distance = np.abs(colours[:, None, :] - table[None, :, :]).max(axis=2)  # (unique colours, classes)
        nearest = distance.argmin(axis=1)
        matched = distance[np.arange(len(unique)), nearest] <= tolerance
        index = np.where(matched, nearest, IGNORE).astype(np.uint8)
        counts = np.bincount(inverse, minlength=len(unique))
        unmatched = {tuple(int(v) for v in colours[k]): int(counts[k]) for k in np.flatnonzero(~matched)}
        return index[inverse].reshape(packed.shape), unmatched

    def to_task(self, name: str = "optical") -> TaskSpec:
        """The task of this table: one pixel classification head ``ice`` with its classes in index order."""
        head = Head(
            name="ice",
            long_name="Ice form or scene class of each pixel",
            class_names=self.names,
            colours=self.hex_colours,
            metrics=("miou", "f1"),
        )
        return TaskSpec(name=name, heads=(head,), ignore_index=IGNORE)

    def describe(self) -> str:
        """``N classes from <file>`` for messages."""
        return f"{len(self.classes)} classes from {self.source}" if self.source else f"{len(self.classes)} classes"


def read_annotation_config(path: str | Path) -> ClassTable:
    """The table of a PixelAnnotationTool ``config.json`` (an entry with id 0 names the fill, not a class)."""
    path = Path(path)
    fix = "fix the file or give PixelAnnotationTool's config.json of these labels"
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        raise PhotoFileError(path, "does not exist", "give the config.json of these labels") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PhotoFileError(path, f"cannot be read as JSON ({first_line(err)})", fix) from None
    labels = data.get("labels") if isinstance(data, dict) else None
    if not isinstance(labels, dict) or not labels:
        raise PhotoFileError(path, 'has no "labels" object of classes', fix)
    classes = []
    for key, entry in labels.items():
        if not isinstance(entry, dict):
            raise PhotoFileError(path, f"label {key!r} is not an object", fix)
        class_id, colour, name = entry.get("id"), entry.get("color"), entry.get("name", key)
        if not isinstance(class_id, int) or isinstance(class_id, bool) or not 0 <= class_id < IGNORE:
            raise PhotoFileError(path, f'label {key!r} has "id" {class_id!r}; ids are integers 0-254', fix)
        if not isinstance(name, str) or not name.strip():
            raise PhotoFileError(path, f'label {key!r} has "name" {name!r}; names are non-empty text', fix)
        if not (isinstance(colour, list) and len(colour) == 3 and all(_is_byte(c) for c in colour)):
            raise PhotoFileError(path, f'label {key!r} has "color" {colour!r}; give [r, g, b] in 0-255', fix)
        if class_id != WATERSHED_FILL:
            classes.append(PhotoClass(class_id, name.strip(), tuple(colour), str(entry.get("categorie", ""))))
    return _table(path, classes, fill_id=WATERSHED_FILL)


def read_class_file(path: str | Path) -> ClassTable:
    """The table of a river-ice class file: one ``name colour`` per line, ids from 0 in line order."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except FileNotFoundError:
        raise PhotoFileError(path, "does not exist", "give the class file of these labels") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PhotoFileError(path, f"cannot be read ({first_line(err)})", "give a text file") from None
    classes: list[PhotoClass] = []
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        names = {c.name for c in classes}
        if "\t" in text:  # name<TAB>colour[<TAB>members of a group]
            fields = [f.strip() for f in text.split("\t") if f.strip()]
            if len(fields) >= 3 and {m.strip() for m in fields[2].split(",")} <= names:
                continue
            name, colour = fields[0], _colour(fields[1]) if len(fields) == 2 else None
        else:
            tokens = re.sub(r"\s*,\s*", ",", text).split()
            if len(tokens) >= 3 and set(tokens[-1].split(",")) <= names:
                continue
            digits = len(tokens) >= 4 and all(t.isdigit() for t in tokens[-3:])
            name = " ".join(tokens[:-3] if digits else tokens[:-1])
            colour = _colour(" ".join(tokens[-3:] if digits else tokens[-1:]))
        if colour is None or not name:
            raise PhotoFileError(
                path,
                f"line {number} ({text!r}) is not 'name colour'",
                "write one class a line as 'name r g b', 'name r,g,b' or 'name #RRGGBB'",
            )
        classes.append(PhotoClass(len(classes), name, colour))
    return _table(path, classes, fill_id=None)


def read_class_table(path: str | Path) -> ClassTable:
    """A ``.json`` file as PixelAnnotationTool's config, any other as a class file."""
    path = Path(path)
    return read_annotation_config(path) if path.suffix.lower() == ".json" else read_class_file(path)


def find_class_table(folder: str | Path) -> ClassTable:
    """The table of a photo folder: ``config.json``, else one ``classes*.txt``, in the folder then its parent."""
    folder = Path(folder)
    for place in (folder, folder.parent):
        if (place / CONFIG_NAME).is_file():
            return read_annotation_config(place / CONFIG_NAME)
        class_files = sorted(place.glob(CLASS_FILE_GLOB))
        if len(class_files) > 1:
            raise PhotoFileError(
                place, f"holds {len(class_files)} class files ({', '.join(p.name for p in class_files)})", _GIVE
            )
        if class_files:
            return read_class_file(class_files[0])
    raise PhotoFileError(
        folder, f"has no class table: no {CONFIG_NAME} or {CLASS_FILE_GLOB} in it or in {folder.parent}", _GIVE
    )


def metric_key(name: str) -> str:
    """A class name as part of an MLflow metric name: ``_`` for every character but letters and digits."""
    return "".join(ch if ch.isalnum() else "_" for ch in name)


def _table(path: Path, classes: list[PhotoClass], fill_id: int | None) -> ClassTable:
    if not classes:
        raise PhotoFileError(path, "names no class", "list the classes of the labels")
    by_id: dict[int, str] = {}
    for c in classes:
        if c.id in by_id:
            raise PhotoFileError(path, f"gives id {c.id} to both {by_id[c.id]!r} and {c.name!r}", "give each its id")
        by_id[c.id] = c.name
    names = [c.name for c in classes]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise PhotoFileError(path, f"names {', '.join(map(repr, twice))} twice", "give each class its own name")
    by_key: dict[str, str] = {}
    for name in names:
        other = by_key.setdefault(metric_key(name), name)
        if other != name:
            raise PhotoFileError(path, f"names {other!r} and {name!r}, which are one metric name "
                                 f"({metric_key(name)}: letters and digits are kept, any other character is _)",
                                 "rename one, e.g. with another word or letter")  # fmt: skip
    return ClassTable(tuple(sorted(classes, key=lambda c: c.id)), fill_id=fill_id, source=path)


def _is_byte(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255


def _colour(text: str) -> RGB | None:
    """``r g b``, ``r,g,b``, ``#RRGGBB`` or a colour name as (r, g, b); None when it is none of them."""
    parts = [p for p in re.split(r"[\s,]+", text.strip()) if p]
    if len(parts) == 3 and all(p.isdigit() for p in parts):
        values = [int(p) for p in parts]
    elif len(parts) == 1 and not parts[0].isdigit():
        try:
            values = list(ImageColor.getrgb(parts[0]))[:3]
        except ValueError:
            return None
    else:
        return None
    return (values[0], values[1], values[2]) if all(_is_byte(v) for v in values) else None
