"""Checking a photo folder before a long job (``seaice optical inspect``): per photo its size, label kind,
split and classes present, and every problem found (an unreadable file, a photo without a label, a label
whose size is not its image's, ids or colours the class table lacks); problems are reported, never raised.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import numpy as np

from seaice_mlflow.tasks.optical.labels import IGNORE, ClassTable, PhotoFileError
from seaice_mlflow.tasks.optical.readers import Photo, PhotoFolder, decode_label, read_image, size_mismatch


@dataclass
class PhotoReport:
    """What inspect says about one photo."""

    image: str
    label: str | None
    label_kind: str | None
    split: str
    size: list[int] | None = None  # image height, width
    classes: list[str] = field(default_factory=list)  # names of the classes its label holds
    ignored_fraction: float | None = None  # label pixels at 255 (boundaries, unmarked, unknown)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}

    def summary(self) -> str:
        """One line: OK/BAD, image, size, label kind, split, classes (or the problems)."""
        if not self.ok:
            return f"BAD {self.image}: {'; '.join(self.problems)}"
        return (
            f"OK  {self.image}: {self.size[0]}x{self.size[1]} px, {self.label_kind} label, {self.split}, "
            f"{100 * self.ignored_fraction:.1f}% ignored, classes: {', '.join(self.classes) or 'none'}"
        )


@dataclass
class FolderReport:
    """What inspect says about a folder: its layout, class table and photos."""

    root: str
    layout: str
    table: str
    class_names: list[str]
    photos: list[PhotoReport]

    @property
    def ok(self) -> bool:
        return all(p.ok for p in self.photos)

    def as_dict(self) -> dict:
        return {
            "ok": self.ok,
            "root": self.root,
            "layout": self.layout,
            "table": self.table,
            "class_names": self.class_names,
            "photos": [p.as_dict() for p in self.photos],
        }

    def summary(self) -> str:
        """The closing line: layout, table, counts per split, photos OK and with problems."""
        bad = sum(not p.ok for p in self.photos)
        train = sum(p.split == "train" for p in self.photos)
        return (
            f"{self.layout} layout, {self.table}; {train} train, {len(self.photos) - train} val photo(s); "
            f"{len(self.photos) - bad} OK, {bad} with problems"
        )


def inspect_photo(photo: Photo, table: ClassTable) -> PhotoReport:
    """Read one photo and its label and list what is wrong with them."""
    report = PhotoReport(
        image=str(photo.image),
        label=None if photo.label is None else str(photo.label),
        label_kind=photo.label_kind,
        split=photo.split,
    )
    try:
        report.size = list(read_image(photo.image).shape[:2])
    except PhotoFileError as err:
        report.problems.append(str(err))
    if photo.label is None:
        report.problems.append("has no label")
        return report
    try:
        label = decode_label(photo, table)
    except PhotoFileError as err:
        report.problems.append(str(err))
        return report
    present = np.flatnonzero(np.bincount(label.indices.ravel(), minlength=256)[: len(table.classes)])
    report.classes = [table.names[k] for k in present]
    report.ignored_fraction = float(np.mean(label.indices == IGNORE))
    if report.size is not None and list(label.indices.shape) != report.size:
        report.problems.append(f"label {photo.label.name} {size_mismatch(label.indices.shape, tuple(report.size))}")
    if label.unknown:
        what = "colours" if photo.label_kind == "colour" else "ids"
        shown = ", ".join(label.unknown[:8]) + (" ..." if len(label.unknown) > 8 else "")
        report.problems.append(
            f"label {photo.label.name} holds {what} missing from the class table: {shown} "
            f"({label.unknown_pixels} pixels; the table has {', '.join(table.names)})"
        )
    return report


def inspect_folder(folder: PhotoFolder, photos: Iterable[Photo] | None = None) -> FolderReport:
    """Inspect the photos of an opened folder (all of them, or ``photos``, e.g. wrapped in a progress bar)."""
    return FolderReport(
        root=str(folder.root),
        layout=folder.layout,
        table=folder.table.describe(),
        class_names=list(folder.table.names),
        photos=[inspect_photo(photo, folder.table) for photo in (folder.photos if photos is None else photos)],
    )
