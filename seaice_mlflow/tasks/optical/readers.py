"""Users' photo folders, opened unchanged: the layout, the photos with their labels and split, and the
pixels of an image (uint8 RGB) and of its label (uint8 class indices through the class table).

Layouts (detected in this order):

- ``split-folders`` (river ice): ``{training,validation}/images/<stem>.<ext>`` with
  ``.../labels/<stem>.png``; the split is the folder's.
- ``images-labels`` (Panchi et al.): ``images/<stem>.<ext>`` with ``labels/<stem>_mask.png``.
- ``annotation-tool`` (PixelAnnotationTool): ``<stem>.<ext>`` with ``<stem>_watershed_mask.png`` (dense,
  channel 0, 255 on watershed boundaries) or else ``<stem>_mask.png``; every name holding ``_mask.png``
  is a label, never a photo.

In the last two the validation photos are those named in ``validation.txt`` (one image file name a line),
else a seeded random 20 %. Labels of the first two hold ids (``ids``; palette, grey or R=G=B images)
or class colours (``colour``, snapped to the table within a tolerance): the first readable label of a
folder decides, unless ``masks`` says. Ids that the table lacks make :func:`read_label` fail with the
file and the ids (inspect lists them); their pixels are 255 in :func:`decode_label`. Images are read as
stored (no EXIF rotation: labels are drawn on the stored pixels).

Large photos: Pillow warns above 89 Mpixel and refuses above 179 Mpixel, its guard against decompression
bombs in files from the web; a 10000 x 10000 drone photo printed that raw warning. The readers take the
user's own photos and labels up to :data:`MAX_PHOTO_PIXELS` instead (Pillow's limit is lifted only while
one of them is read) and refuse a larger one naming its size. Predicting a photo costs about 17 bytes a
pixel besides the tiled network and its strip of tile rows (decoded RGB, ids, the two masks written;
peak RSS of ``predict_photo`` + ``write_masks`` with a tiny U-Net on this 2-core VM: 0.60 GiB above the
imports for a 2000 px square, 0.79 GiB for 4000 px), so about 17 GB at the limit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image

from seaice_mlflow.core.errors import first_line, looked_at
from seaice_mlflow.tasks.optical.config import MASK_KINDS, MaskKind
from seaice_mlflow.tasks.optical.labels import (
    COLOUR_TOLERANCE,
    ClassTable,
    PhotoFileError,
    find_class_table,
    read_class_table,
)

Layout = Literal["annotation-tool", "images-labels", "split-folders"]
LabelKind = Literal["watershed", "mask", "ids", "colour"]
Split = Literal["train", "val"]

IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "jpe", "bmp", "tif", "tiff", "pgm", "ppm", "pbm", "jp2")
MASK_MARK = "_mask.png"
VALIDATION_LIST = "validation.txt"
VAL_FRACTION = 0.2
#: Largest photo or label read, in pixels (a 31 600 px square; module docstring).
MAX_PHOTO_PIXELS = 1_000_000_000
SPLIT_FOLDERS: dict[str, Split] = {"training": "train", "validation": "val"}
_UNREADABLE = "the file is truncated or not an image; export it again"
_MIXED = "give the folder's labels all as ids (R=G=B) or all as colours"


@dataclass(frozen=True)
class Photo:
    """One photo of a folder: its image, its label file (None if it has none), how that is read, its split."""

    image: Path
    label: Path | None
    label_kind: LabelKind | None
    split: Split

    @property
    def stem(self) -> str:
        return self.image.stem

    def digest(self) -> str:
        """A fingerprint of the image file's bytes: a model's recipe records those of its training
        and validation photos, so a photo is recognised under any name (evaluate's check)."""
        return photo_digest(self.image)


def photo_digest(path: str | Path) -> str:
    """The first 16 hex digits of the SHA-256 of a file's bytes."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()[:16]


@dataclass(frozen=True)
class PhotoFolder:
    """A folder opened: where it is, its layout, its class table and its photos (sorted by split, name)."""

    root: Path
    layout: Layout
    table: ClassTable
    photos: tuple[Photo, ...]

    def digests(self) -> tuple[str, ...]:
        """Fingerprints of the labelled photos (training and validation): what a recipe records."""
        return tuple(p.digest() for p in self.photos if p.label is not None)

    def split(self, split: Split) -> tuple[Photo, ...]:
        return tuple(p for p in self.photos if p.split == split)


@dataclass(frozen=True)
class DecodedLabel:
    """A label as class indices (H, W), 255 where ignored, and what it held that the table lacks."""

    indices: np.ndarray
    unknown: tuple[str, ...]  # "id 12" or "#AABBCC", most pixels first
    unknown_pixels: int


def detect_layout(folder: str | Path) -> Layout:
    """The layout of a photo folder, or an error naming the folder and the layouts it could be."""
    folder = Path(folder)
    if not folder.exists():
        raise PhotoFileError(looked_at(folder), "does not exist", "check the path")
    if not folder.is_dir():
        raise PhotoFileError(folder, "is a file, not a folder", "give the folder of photos")
    if any((folder / name / "images").is_dir() for name in SPLIT_FOLDERS):
        return "split-folders"
    if (folder / "images").is_dir():
        return "images-labels"
    if _images(folder):
        return "annotation-tool"
    raise PhotoFileError(
        folder,
        f"holds no photos ({', '.join(IMAGE_EXTENSIONS)})",
        "give a folder of photos with their _watershed_mask.png, one with images/ and labels/, "
        "or one with training/ and validation/",
    )


def list_photos(
    folder: str | Path, masks: MaskKind = "auto", seed: int = 0, val_fraction: float = VAL_FRACTION
) -> tuple[Layout, list[Photo]]:
    """The layout and photos of a folder; ``seed`` and ``val_fraction`` draw the split without ``validation.txt``."""
    folder = Path(folder)
    if masks not in MASK_KINDS:
        raise ValueError(f"masks must be one of {', '.join(MASK_KINDS)}, got {masks!r}")
    if not 0 <= val_fraction < 1:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    layout = detect_layout(folder)
    if layout == "split-folders":
        pairs = [
            (image, folder / name / "labels" / f"{image.stem}.png", split)
            for name, split in SPLIT_FOLDERS.items()
            for image in _images(folder / name / "images")
        ]
    else:
        images = _images(folder / "images") if layout == "images-labels" else _images(folder)
        splits = _splits(folder, images, seed, val_fraction)
        if layout == "images-labels":
            labels = [folder / "labels" / f"{image.stem}{MASK_MARK}" for image in images]
        else:
            labels = [_annotation_label(image) for image in images]
        pairs = list(zip(images, labels, splits))
    if layout == "annotation-tool":
        kinds: list[LabelKind] = [_annotation_kind(label) for _, label, _ in pairs]
    else:
        kind = masks if masks != "auto" else _mask_kind([label for _, label, _ in pairs])
        kinds = [kind] * len(pairs)
    photos = []
    for (image, label, split), kind in zip(pairs, kinds):
        labelled = label is not None and label.is_file()
        photos.append(Photo(image, label if labelled else None, kind if labelled else None, split))
    return layout, sorted(photos, key=lambda p: (p.split != "train", p.image.name))


def open_folder(
    folder: str | Path,
    classes: str | Path | None = None,
    masks: MaskKind = "auto",
    seed: int = 0,
    val_fraction: float = VAL_FRACTION,
) -> PhotoFolder:
    """A folder with its class table: the file ``classes``, else :func:`~.labels.find_class_table`."""
    folder = Path(folder)
    layout, photos = list_photos(folder, masks=masks, seed=seed, val_fraction=val_fraction)
    table = read_class_table(classes) if classes is not None else find_class_table(folder)
    return PhotoFolder(folder, layout, table, tuple(photos))


@contextmanager
def open_photo(path: Path) -> Iterator[Image.Image]:
    """``Image.open`` with :data:`MAX_PHOTO_PIXELS` in place of Pillow's decompression-bomb limit, until
    the image is closed; a larger image is a :class:`PhotoFileError` naming its size."""
    limit, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
    try:
        with Image.open(path) as image:
            width, height = image.size
            if width * height > MAX_PHOTO_PIXELS:
                size = f"{height}x{width} px ({width * height / 1e6:.5g} Mpixel)"
                raise PhotoFileError(path, f"is {size}, more than the {MAX_PHOTO_PIXELS / 1e6:.5g} Mpixel this tool "
                                     "reads", "cut it into smaller photos (e.g. gdal_translate -srcwin), and its "
                                     "label alike")  # fmt: skip
            yield image
    finally:
        Image.MAX_IMAGE_PIXELS = limit


def read_image(path: str | Path) -> np.ndarray:
    """A photo as uint8 (H, W, 3) RGB: grey, palette, RGBA and CMYK converted, 16-bit grey scaled to 8 bits."""
    path = Path(path)
    try:
        with open_photo(path) as image:
            if image.mode in ("I", "I;16", "I;16B", "I;16L"):
                grey = np.asarray(image, dtype=np.float64) / 257.0
                return np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[..., None], 3, axis=2)
            if image.mode == "F":
                raise PhotoFileError(path, "holds floating-point pixels", "give an 8- or 16-bit photo")
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise PhotoFileError(path, f"cannot be read as an image ({first_line(err)})", _UNREADABLE) from None


def read_mask(path: str | Path, colours: bool = False) -> np.ndarray:
    """A label file's pixels: (H, W) uint8 for grey or palette files (palette indices), (H, W, 3) for colour
    files, and for every file with ``colours`` (a palette file's colours)."""
    path = Path(path)
    try:
        with open_photo(path) as image:
            if colours or image.mode in ("RGB", "RGBA", "CMYK", "YCbCr"):
                return np.asarray(image.convert("RGB"), dtype=np.uint8)
            direct = image.mode in ("1", "P", "L", "I", "I;16", "I;16B", "I;16L")
            values = np.asarray(image if direct else image.convert("L"))
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise PhotoFileError(path, f"cannot be read as a label image ({first_line(err)})", _UNREADABLE) from None
    if values.size and values.max() > 255:
        raise PhotoFileError(path, f"holds values up to {values.max()}; label ids are 0-255", "give 8-bit labels")
    return values.astype(np.uint8)


def decode_label(photo: Photo, table: ClassTable, tolerance: int = COLOUR_TOLERANCE) -> DecodedLabel:
    """A photo's label as class indices; ids or colours the table lacks become 255 and are listed."""
    if photo.label is None or photo.label_kind is None:
        raise PhotoFileError(photo.image, "has no label", "label it or leave it out")
    values = read_mask(photo.label, colours=photo.label_kind == "colour")
    if photo.label_kind == "colour":
        indices, colours = table.snap_colours(values, tolerance)
        unknown = {"#{:02X}{:02X}{:02X}".format(*c): n for c, n in colours.items()}
    else:
        if values.ndim == 3:
            if photo.label_kind == "ids" and not _grey(values):
                raise PhotoFileError(
                    photo.label, "holds colours (its channels differ) where the folder's labels hold ids", _MIXED
                )
            values = values[..., 0]
        indices = table.index_lookup()[values]
        unknown = {f"id {i}": n for i, n in table.unknown_ids(values).items()}
    ranked = sorted(unknown, key=lambda k: -unknown[k])
    return DecodedLabel(indices, tuple(ranked), sum(unknown.values()))


def read_label(photo: Photo, table: ClassTable, tolerance: int = COLOUR_TOLERANCE) -> np.ndarray:
    """A photo's label as uint8 class indices (H, W), 255 ignored; an error naming ids or colours not in the table."""
    label = decode_label(photo, table, tolerance)
    if label.unknown:
        shown = ", ".join(label.unknown[:8]) + (" ..." if len(label.unknown) > 8 else "")
        raise PhotoFileError(
            photo.label,
            f"holds {shown} ({label.unknown_pixels} pixels), not in the class table ({table.describe()})",
            "add them to the class table or relabel those pixels",
        )
    return label.indices


def read_pair(photo: Photo, table: ClassTable, tolerance: int = COLOUR_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """A photo's image (H, W, 3) and class indices (H, W); an error when their sizes differ."""
    image, label = read_image(photo.image), read_label(photo, table, tolerance)
    if image.shape[:2] != label.shape:
        raise PhotoFileError(photo.label, size_mismatch(label.shape, image.shape), "export the label again")
    return image, label


def size_mismatch(label_shape: tuple[int, ...], image_shape: tuple[int, ...]) -> str:
    """The problem of a label whose size is not its image's."""
    return f"is {label_shape[0]}x{label_shape[1]} px but its image is {image_shape[0]}x{image_shape[1]} px"


def _images(folder: Path) -> list[Path]:
    """The photos of a folder, sorted; names holding ``_mask.png`` and hidden files are not photos."""
    if not folder.is_dir():
        return []
    return sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.suffix.lower().lstrip(".") in IMAGE_EXTENSIONS
        and MASK_MARK not in p.name.lower()
        and not p.name.startswith(".")
    )


def _annotation_label(image: Path) -> Path | None:
    for suffix in ("_watershed_mask.png", MASK_MARK):
        label = image.with_name(f"{image.stem}{suffix}")
        if label.is_file():
            return label
    return None


def _annotation_kind(label: Path | None) -> LabelKind:
    return "watershed" if label is not None and label.name.endswith("_watershed_mask.png") else "mask"


def _splits(folder: Path, images: list[Path], seed: int, val_fraction: float) -> list[Split]:
    """``validation.txt``'s photos as val, else a seeded ``val_fraction`` of them."""
    listing = folder / VALIDATION_LIST
    if listing.is_file():
        with open(listing, encoding="utf-8") as f:
            names = [line.strip() for line in f if line.strip()]
        known = {p.name for p in images} | {p.stem for p in images}
        missing = [n for n in names if Path(n).name not in known]
        if missing:
            raise PhotoFileError(
                listing,
                f"names {len(missing)} photo(s) not in the folder: {', '.join(missing[:5])}",
                "remove those lines or add the photos",
            )
        chosen = {Path(n).name for n in names}
        return ["val" if p.name in chosen or p.stem in chosen else "train" for p in images]
    n_val = int(round(val_fraction * len(images)))
    val = set(np.random.default_rng(seed).permutation(len(images))[:n_val].tolist())
    return ["val" if k in val else "train" for k in range(len(images))]


def _mask_kind(labels: list[Path | None]) -> LabelKind:
    """``colour`` when the first readable label holds colours (channels differ), else ``ids``."""
    for label in labels:
        if label is None or not label.is_file():
            continue
        try:
            values = read_mask(label)
        except PhotoFileError:
            continue
        return "colour" if values.ndim == 3 and not _grey(values) else "ids"
    return "ids"


def _grey(rgb: np.ndarray) -> bool:
    """Whether an (H, W, 3) mask has R = G = B everywhere."""
    return np.array_equal(rgb[..., 0], rgb[..., 1]) and np.array_equal(rgb[..., 0], rgb[..., 2])
