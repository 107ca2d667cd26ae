"""Readers of full-reference (FR) and no-reference (NR) IQA datasets in their released layouts.

``create_fr_dataset(name, root)`` returns an :class:`FRDataset` whose items are
``{"dist": (3, H, W), "ref": (3, H, W), "score": float32 scalar, "index": int}``;
``create_nr_dataset(name, root)`` returns an :class:`NRDataset` whose items are
``{"image": (3, H, W), "score": float32 scalar, "index": int}``. Images are float32 in ``[0, 1]``
(:func:`asymlib.imageio.load_image`). Every dataset exposes its annotation as ``records``
(a :class:`pandas.DataFrame`, one row per scored image) with absolute image paths, the ``score``
and a ``group`` (the reference/content id, for content-disjoint splits).

Construction is cheap but strict: the root folder, the annotation file (columns, numeric scores)
and the existence of every referenced image are checked, and each problem raises
:class:`~asymlib.errors.DatasetError` naming the folder, file, line or paths. Images are decoded
only in ``__getitem__`` (a corrupt file raises :class:`~asymlib.errors.ImageReadError` naming it)
or all at once by ``validate()``.

Registered names (``list_fr_datasets()`` / ``list_nr_datasets()``): FR ``kadid10k``, ``tid2013``,
``liu13``, ``ma17``, ``tqd``; NR ``koniq10k``, ``kadid10k``. Lookups ignore case, ``-`` and ``_``.

Paired transforms (:class:`PairedRandomCrop`, :class:`PairedCenterCrop`, :class:`PairedResize`,
:class:`PairedCompose`) map ``(dist, ref) -> (dist, ref)`` and apply the same geometry to both.
"""
from __future__ import annotations

import copy
import os
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from ..errors import DatasetError, ImageReadError, InputSizeError, UnknownNameError
from ..imageio import load_image

__all__ = [
    "TID2013FR",
    "TQDFR",
    "FRDataset",
    "KADID10kFR",
    "KADID10kNR",
    "KonIQ10kNR",
    "Liu13FR",
    "Ma17FR",
    "NRDataset",
    "PairedCenterCrop",
    "PairedCompose",
    "PairedRandomCrop",
    "PairedResize",
    "create_fr_dataset",
    "create_nr_dataset",
    "list_fr_datasets",
    "list_nr_datasets",
    "register_fr_dataset",
    "register_nr_dataset",
]

PairedTransform = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
ImageTransform = Callable[[Tensor], Tensor]

_MAX_LISTED = 10  # paths named in a validate() error
_MAX_MISSING_LISTED = 5  # paths named in a build-time "missing files" error


# ----------------------------------------------------------------------------------------------
# File and annotation helpers
# ----------------------------------------------------------------------------------------------


def _require_dir(folder: Path, what: str) -> Path:
    if not folder.is_dir():
        raise DatasetError(f"{what} folder not found: {folder}")
    return folder


def _require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise DatasetError(f"{what} not found: {path}")
    return path


def _listing(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return [e.name for e in it]


class _CaseInsensitiveDir:
    """File names of one folder, looked up exactly first and then ignoring case.

    TID2013 spells the same file ``i25_...``/``I25_...`` differently in the annotation and on disk;
    on a case-sensitive file system the real spelling must come from the directory listing.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self.names = set(_listing(folder))
        self.folded: dict[str, str] = {}
        for n in sorted(self.names):
            self.folded.setdefault(n.casefold(), n)

    def resolve(self, name: str) -> Path:
        """Path of ``name`` in the folder; the annotation's spelling is kept when nothing matches."""
        if name in self.names:
            return self.folder / name
        return self.folder / self.folded.get(name.casefold(), name)


def _missing_files(paths: Iterable[str]) -> list[str]:
    """The paths that are not existing files; each parent folder is listed once, not stat'ed per file."""
    by_parent: dict[str, list[str]] = defaultdict(list)
    for p in dict.fromkeys(paths):  # unique, order kept
        by_parent[os.path.dirname(p)].append(p)
    missing: list[str] = []
    for parent, members in by_parent.items():
        try:
            present = set(_listing(Path(parent)))
        except OSError:
            present = set()
        for p in members:
            if os.path.basename(p) not in present:
                missing.append(p)
    return missing


def _check_numeric(df: pd.DataFrame, column: str, source: Path, line_offset: int) -> pd.Series:
    """``df[column]`` as float64, or a DatasetError naming the first bad line (``line_offset`` = line of row 0)."""
    raw = df[column].astype(str)
    values = pd.to_numeric(raw.str.strip(), errors="coerce")
    bad = np.flatnonzero(~np.isfinite(values.to_numpy(dtype=np.float64)))
    if len(bad):
        i = int(bad[0])
        more = f" ({len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
        raise DatasetError(
            f"{source} line {i + line_offset}: column {column!r} has value {raw.iloc[i]!r}, "
            f"which is not a finite number{more}"
        )
    return values.astype(np.float64)


def _reject_duplicates(items: Sequence[str], scores: Sequence[float], source: Path,
                       lines: Sequence[int]) -> None:
    """Each image may be rated once: a repeated one (same file name) raises, naming both lines and saying
    whether the two scores conflict (``lines[i]`` is item ``i``'s line number in ``source``)."""
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        j = first.setdefault(item, i)
        if j != i:
            same = "the same score" if scores[i] == scores[j] else f"conflicting scores {scores[j]!r} and {scores[i]!r}"
            raise DatasetError(f"{source} lines {lines[j]} and {lines[i]}: {item!r} is listed twice, with {same}")


def _read_csv(path: Path, required: Sequence[str], numeric: Sequence[str] = ()) -> pd.DataFrame:
    """Read an annotation CSV as strings, check ``required`` columns and convert ``numeric`` ones."""
    _require_file(path, "annotation file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path}: cannot parse as CSV: {exc}") from exc
    df.columns = [str(c).strip() for c in df.columns]
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise DatasetError(f"{path}: missing column(s) {missing}; the header has {list(df.columns)}")
    if df.empty:
        raise DatasetError(f"{path}: no data rows")
    for c in required:
        if c in numeric:
            continue
        empty = np.flatnonzero(df[c].str.strip().to_numpy() == "")
        if len(empty):
            raise DatasetError(f"{path} line {int(empty[0]) + 2}: column {c!r} is empty")
    for c in numeric:
        df[c] = _check_numeric(df, c, path, line_offset=2)  # line 1 is the header
    return df


def _read_mat_table(path: Path, keys: Sequence[str], numeric: Sequence[str] = ()) -> pd.DataFrame:
    """Read equal-length 1-D variables ``keys`` of a MATLAB file (cell arrays of text or numbers)."""
    from scipy.io import loadmat

    _require_file(path, "annotation file")
    try:
        mat = loadmat(path, squeeze_me=True, chars_as_strings=True)
    except Exception as exc:  # scipy raises ValueError/TypeError/MatReadError for bad files
        raise DatasetError(f"{path}: cannot read as a MATLAB .mat file: {exc}") from exc
    missing = [k for k in keys if k not in mat]
    if missing:
        found = sorted(k for k in mat if not k.startswith("__"))
        raise DatasetError(f"{path}: missing variable(s) {missing}; the file has {found}")
    cols: dict[str, np.ndarray] = {}
    for k in keys:
        arr = np.atleast_1d(np.asarray(mat[k], dtype=object)).ravel()
        cols[k] = arr
    lengths = {k: len(v) for k, v in cols.items()}
    if len(set(lengths.values())) != 1:
        raise DatasetError(f"{path}: variables have different lengths {lengths}")
    df = pd.DataFrame({k: [str(x).strip() if k not in numeric else x for x in v] for k, v in cols.items()})
    for k in numeric:
        values = pd.to_numeric(df[k], errors="coerce").to_numpy(dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DatasetError(f"{path}: variable {k!r} entry {int(bad[0]) + 1} ({df[k].iloc[bad[0]]!r}) "
                               f"is not a finite number")
        df[k] = values
    return df


def _read_list_file(path: Path, columns: Sequence[str]) -> tuple[pd.DataFrame, list[int]]:
    """A headerless list of ``len(columns)`` tab- or space-separated fields per line (the last one, ``score``,
    numeric); returns the rows and their line numbers. Blank lines are skipped; a BOM is read as in the CSVs."""
    _require_file(path, "annotation file")
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read as text: {exc}") from exc
    rows, lines = [], []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split("\t") if "\t" in line else line.split()
        parts = [x.strip() for x in parts]
        if len(parts) != len(columns) or not all(parts):
            raise DatasetError(f"{path} line {lineno}: expected {len(columns)} fields ({' '.join(columns)}), "
                               f"got {line.strip()!r}")
        try:
            score = float(parts[-1])
        except ValueError:
            score = float("nan")
        if not np.isfinite(score):
            raise DatasetError(f"{path} line {lineno}: score {parts[-1]!r} is not a finite number")
        rows.append(dict(zip(columns[:-1], parts[:-1]), **{columns[-1]: score}))
        lines.append(lineno)
    if not rows:
        raise DatasetError(f"{path}: no data lines")
    return pd.DataFrame(rows), lines


_D = TypeVar("_D", bound="_IQADataset")


def _stem(name: str) -> str:
    return Path(name).stem


# ----------------------------------------------------------------------------------------------
# Dataset classes
# ----------------------------------------------------------------------------------------------


class _IQADataset(Dataset):
    """Shared state and checks of :class:`FRDataset` and :class:`NRDataset`."""

    image_columns: tuple[str, ...] = ()
    required_columns: tuple[str, ...] = ()

    def __init__(
        self,
        root: str | Path,
        records: pd.DataFrame,
        *,
        name: str,
        score_name: str,
        higher_is_better: bool,
        transform: Callable | None = None,
        annotation: str | Path | None = None,
        strict_mode: bool = False,
    ):
        self.name = name
        self.root = Path(root)
        self.score_name = score_name
        self.higher_is_better = bool(higher_is_better)
        self.transform = transform
        self.annotation = Path(annotation) if annotation is not None else None
        self.strict_mode = strict_mode
        missing_cols = [c for c in self.required_columns if c not in records.columns]
        if missing_cols:
            raise DatasetError(f"{name}: records lack column(s) {missing_cols}; have {list(records.columns)}")
        records = records.reset_index(drop=True).copy()
        for c in self.image_columns:
            records[c] = records[c].astype(str)
        records["score"] = records["score"].astype(np.float64)
        if "group" in records.columns:
            records["group"] = records["group"].astype(str)
        self.records = records
        self._check_files()

    # -- checks ---------------------------------------------------------------------------------
    def _all_paths(self) -> list[str]:
        return list(dict.fromkeys(p for c in self.image_columns for p in self.records[c]))

    def _check_files(self) -> None:
        paths = self._all_paths()
        missing = _missing_files(paths)
        if missing:
            src = f" referenced by {self.annotation}" if self.annotation is not None else ""
            shown = "\n  ".join(missing[:_MAX_MISSING_LISTED])
            more = f"\n  ... and {len(missing) - _MAX_MISSING_LISTED} more" if len(missing) > _MAX_MISSING_LISTED else ""
            raise DatasetError(
                f"{self.name}: {len(missing)} of {len(paths)} image files{src} are missing:\n  {shown}{more}"
            )

    def validate(self, decode: bool = True) -> None:
        """Check every image file; with ``decode=True`` read each one fully (slow on large datasets).

        FR datasets also report distorted/reference pairs whose sizes differ.

        Raises:
            DatasetError: listing the first 10 problems (unreadable or missing paths with the reason)
                and the total count.
        """
        paths = self._all_paths()
        problems: list[str] = []
        if not decode:
            problems = [f"{p}: file not found" for p in _missing_files(paths)]
        else:
            sizes: dict[str, tuple[int, int]] = {}
            for p in paths:
                try:
                    sizes[p] = tuple(load_image(p, strict_mode=self.strict_mode).shape[-2:])
                except ImageReadError as exc:
                    problems.append(str(exc))
            problems += self._pair_problems(sizes)
        if problems:
            shown = "\n  ".join(problems[:_MAX_LISTED])
            more = f"\n  ... and {len(problems) - _MAX_LISTED} more" if len(problems) > _MAX_LISTED else ""
            raise DatasetError(f"{self.name} ({self.root}): {len(problems)} problem(s) found:\n  {shown}{more}")

    def _pair_problems(self, sizes: dict[str, tuple[int, int]]) -> list[str]:
        return []

    # -- access ---------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def _row(self, i: int) -> tuple[int, pd.Series]:
        n = len(self.records)
        idx = int(i)
        if idx < 0:
            idx += n
        if not 0 <= idx < n:
            raise IndexError(f"{self.name}: index {i} out of range for {n} records")
        return idx, self.records.iloc[idx]

    def _load(self, path: str) -> Tensor:
        return load_image(path, strict_mode=self.strict_mode)

    def subset(self: _D, indices: Sequence[int] | np.ndarray | Tensor) -> _D:
        """A dataset of the same kind over ``records.iloc[indices]`` (integer positions or a boolean mask).

        The subset shares root, transform and metadata; its ``index`` values count from 0.
        """
        if isinstance(indices, Tensor):
            indices = indices.cpu().numpy()
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if len(idx) != len(self.records):
                raise IndexError(f"{self.name}: boolean mask of length {len(idx)} for {len(self.records)} records")
            idx = np.flatnonzero(idx)
        out = copy.copy(self)
        out.records = self.records.iloc[idx.astype(np.int64)].reset_index(drop=True)
        return out

    def __repr__(self) -> str:
        direction = "higher is better" if self.higher_is_better else "lower is better"
        return (f"{type(self).__name__}(name={self.name!r}, root='{self.root}', n={len(self)}, "
                f"score={self.score_name!r}, {direction})")


class FRDataset(_IQADataset):
    """A full-reference IQA dataset: (distorted, reference, score) triplets.

    Attributes:
        name: dataset name for tables (``"KADID-10K"``).
        root: dataset folder.
        records: one row per distorted image with at least ``dist`` and ``ref`` (absolute path strings),
            ``score`` (float) and ``group`` (reference image id); readers may add columns.
        score_name: what ``score`` is, with its range (``"DMOS (1-5)"``).
        higher_is_better: direction of ``score``.
        transform: paired transform ``(dist, ref) -> (dist, ref)`` applied in ``__getitem__``.
        annotation: the annotation file the records came from (None when built from a DataFrame).

    Items: ``{"dist": Tensor (3, H, W), "ref": Tensor (3, H, W), "score": float32 scalar tensor,
    "index": int}``, images in ``[0, 1]`` (sizes as stored unless the transform changes them).

    Can be built directly from a DataFrame: ``FRDataset(root, records, name=..., score_name=...,
    higher_is_better=...)``; image existence is checked at construction.
    """

    image_columns = ("dist", "ref")
    required_columns = ("dist", "ref", "score", "group")
    transform: PairedTransform | None

    def __getitem__(self, i: int) -> dict:
        idx, row = self._row(i)
        dist, ref = self._load(row["dist"]), self._load(row["ref"])
        if self.transform is not None:
            dist, ref = self.transform(dist, ref)
        return {"dist": dist, "ref": ref, "score": torch.tensor(row["score"], dtype=torch.float32), "index": idx}

    def _pair_problems(self, sizes: dict[str, tuple[int, int]]) -> list[str]:
        out = []
        for d, r in zip(self.records["dist"], self.records["ref"]):
            if d in sizes and r in sizes and sizes[d] != sizes[r]:
                out.append(f"{d}: size {sizes[d]} differs from its reference {r} {sizes[r]}")
        return out


class NRDataset(_IQADataset):
    """A no-reference IQA dataset: (image, score) pairs.

    Attributes are those of :class:`FRDataset`, with records columns ``image`` (absolute path string),
    ``score`` and optionally ``group``; ``transform`` maps one image ``(3, H, W) -> (3, H', W')``.

    Items: ``{"image": Tensor (3, H, W) in [0, 1], "score": float32 scalar tensor, "index": int}``.
    """

    image_columns = ("image",)
    required_columns = ("image", "score")
    transform: ImageTransform | None

    def __getitem__(self, i: int) -> dict:
        idx, row = self._row(i)
        image = self._load(row["image"])
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "score": torch.tensor(row["score"], dtype=torch.float32), "index": idx}


# ----------------------------------------------------------------------------------------------
# Registries
# ----------------------------------------------------------------------------------------------

_FR_DATASETS: dict[str, Callable[..., FRDataset]] = {}
_NR_DATASETS: dict[str, Callable[..., NRDataset]] = {}


def _key(name: str) -> str:
    return re.sub(r"[\s_\-]", "", str(name).lower())


def register_fr_dataset(name: str) -> Callable:
    """Class/function decorator adding an FR reader ``(root, transform=None, **kwargs)`` under ``name``."""

    def deco(builder):
        _FR_DATASETS[_key(name)] = builder
        return builder

    return deco


def register_nr_dataset(name: str) -> Callable:
    """Class/function decorator adding an NR reader ``(root, transform=None, **kwargs)`` under ``name``."""

    def deco(builder):
        _NR_DATASETS[_key(name)] = builder
        return builder

    return deco


def list_fr_datasets() -> list[str]:
    return sorted(_FR_DATASETS)


def list_nr_datasets() -> list[str]:
    return sorted(_NR_DATASETS)


def create_fr_dataset(name: str, root: str | Path, transform: PairedTransform | None = None, **kwargs) -> FRDataset:
    """Build the FR dataset ``name`` (see ``list_fr_datasets()``) from its folder ``root``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
        DatasetError: the folder, annotation or images are missing or malformed.
    """
    key = _key(name)
    if key not in _FR_DATASETS:
        raise UnknownNameError(f"unknown FR dataset {name!r}; known: {', '.join(list_fr_datasets())}")
    return _FR_DATASETS[key](root, transform=transform, **kwargs)


def create_nr_dataset(name: str, root: str | Path, transform: ImageTransform | None = None, **kwargs) -> NRDataset:
    """Build the NR dataset ``name`` (see ``list_nr_datasets()``) from its folder ``root``.

    Raises:
        UnknownNameError: ``name`` is not registered (the message lists the known names).
        DatasetError: the folder, annotation or images are missing or malformed.
    """
    key = _key(name)
    if key not in _NR_DATASETS:
        raise UnknownNameError(f"unknown NR dataset {name!r}; known: {', '.join(list_nr_datasets())}")
    return _NR_DATASETS[key](root, transform=transform, **kwargs)


# ----------------------------------------------------------------------------------------------
# Readers
# ----------------------------------------------------------------------------------------------


def _read_kadid(root: Path, annotation: str) -> tuple[pd.DataFrame, Path]:
    """Rows of KADID-10K's ``dmos.csv`` with resolved paths: columns dist, ref, score, group, var."""
    _require_dir(root, "dataset root")
    ann = root / annotation
    df = _read_csv(ann, required=("dist_img", "ref_img", "dmos"), numeric=("dmos",))
    _reject_duplicates([n.strip() for n in df["dist_img"]], df["dmos"].tolist(), ann, range(2, len(df) + 2))
    images = _require_dir(root / "images", "image")
    records = pd.DataFrame({
        "dist": [str(images / n.strip()) for n in df["dist_img"]],
        "ref": [str(images / n.strip()) for n in df["ref_img"]],
        "score": df["dmos"].to_numpy(),
        "group": [_stem(n.strip()) for n in df["ref_img"]],
    })
    if "var" in df.columns:
        records["var"] = pd.to_numeric(df["var"], errors="coerce").to_numpy()
    return records, ann


@register_fr_dataset("kadid10k")
class KADID10kFR(FRDataset):
    """KADID-10K (Lin et al., 2019), full reference: 10,125 distorted images of 81 references.

    Layout (as released)::

        root/dmos.csv       header ``dist_img,ref_img,dmos,var``; e.g. ``I01_01_01.png,I01.png,4.57,0.496``
        root/images/        distorted (``I01_01_01.png``) and reference (``I01.png``) images

    ``score`` = DMOS on 1-5, higher is better; ``group`` = reference stem (``"I01"``); ``var`` is kept.
    """

    def __init__(self, root: str | Path, transform: PairedTransform | None = None, *,
                 annotation: str = "dmos.csv", strict_mode: bool = False):
        records, ann = _read_kadid(Path(root), annotation)
        super().__init__(root, records, name="KADID-10K", score_name="DMOS (1-5)", higher_is_better=True,
                         transform=transform, annotation=ann, strict_mode=strict_mode)


@register_nr_dataset("kadid10k")
class KADID10kNR(NRDataset):
    """KADID-10K distorted images with their DMOS, for NR-IQA (layout as in :class:`KADID10kFR`).

    ``group`` = reference stem, so that splits can keep all distortions of one content together.
    """

    def __init__(self, root: str | Path, transform: ImageTransform | None = None, *,
                 annotation: str = "dmos.csv", strict_mode: bool = False):
        fr, ann = _read_kadid(Path(root), annotation)
        records = fr.rename(columns={"dist": "image"}).drop(columns=["ref"])
        super().__init__(root, records, name="KADID-10K", score_name="DMOS (1-5)", higher_is_better=True,
                         transform=transform, annotation=ann, strict_mode=strict_mode)


def _parse_tid_lines(path: Path) -> tuple[list[float], list[str]]:
    _require_file(path, "annotation file")
    scores, names, lines = [], [], []
    try:
        text = path.read_text(encoding="utf-8-sig", errors="strict")  # a BOM is read as in the CSV readers
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: cannot read as text: {exc}") from exc
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2:
            raise DatasetError(f"{path} line {lineno}: expected '<mos> <image name>', got {line.strip()!r}")
        try:
            score = float(parts[0])
        except ValueError:
            raise DatasetError(f"{path} line {lineno}: MOS {parts[0]!r} is not a number") from None
        if not np.isfinite(score):
            raise DatasetError(f"{path} line {lineno}: MOS {parts[0]!r} is not a finite number")
        scores.append(score)
        names.append(parts[1])
        lines.append(lineno)
    if not names:
        raise DatasetError(f"{path}: no data lines")
    _reject_duplicates([n.lower() for n in names], scores, path, lines)  # names are case-insensitive here
    return scores, names


@register_fr_dataset("tid2013")
class TID2013FR(FRDataset):
    """TID2013 (Ponomarenko et al., 2015): 3,000 distorted images of 25 references.

    Layout (as released)::

        root/mos_with_names.txt     lines ``<MOS> <distorted name>``, e.g. ``5.51429 i01_01_1.bmp``
        root/distorted_images/      ``i01_01_1.bmp`` ...
        root/reference_images/      ``I01.BMP`` ...

    The reference of ``iXX_*`` is ``IXX.BMP``. File names differ in case between the annotation and
    the folders for some entries (``i25``/``I25``), so names are matched exactly and, failing that,
    case-insensitively against each folder's listing. ``score`` = MOS on 0-9, higher is better;
    ``group`` = reference id in upper case (``"I01"``).
    """

    def __init__(self, root: str | Path, transform: PairedTransform | None = None, *,
                 annotation: str = "mos_with_names.txt", strict_mode: bool = False):
        root = _require_dir(Path(root), "dataset root")
        ann = root / annotation
        scores, names = _parse_tid_lines(ann)
        dist_dir = _CaseInsensitiveDir(_require_dir(root / "distorted_images", "distorted image"))
        ref_dir = _CaseInsensitiveDir(_require_dir(root / "reference_images", "reference image"))
        groups = [n.split("_", 1)[0].upper() for n in names]
        records = pd.DataFrame({
            "dist": [str(dist_dir.resolve(n)) for n in names],
            "ref": [str(ref_dir.resolve(f"{g}.BMP")) for g in groups],
            "score": scores,
            "group": groups,
        })
        super().__init__(root, records, name="TID2013", score_name="MOS (0-9)", higher_is_better=True,
                         transform=transform, annotation=ann, strict_mode=strict_mode)


class _PairTableFR(FRDataset):
    """FR dataset described by a three-column table ``dist_img, ref_img, score`` (paths relative to root).

    The table is a CSV (header ``dist_img,ref_img,score``), a MATLAB ``.mat`` file holding the
    variables ``dist_img`` and ``ref_img`` (cell arrays of relative paths) and ``score`` (numeric
    vector) of equal length, or a headerless ``.txt`` list of tab- or space-separated fields in the order
    ``list_columns``; the suffix of ``annotation`` decides. ``group`` = reference stem.
    """

    display_name: str = ""
    default_annotation: str = ""
    list_columns: tuple[str, str, str] = ("dist_img", "ref_img", "score")  # field order of a ``.txt`` list
    default_score_name: str = "score"
    default_higher_is_better: bool = True

    def __init__(self, root: str | Path, transform: PairedTransform | None = None, *,
                 annotation: str | None = None, score_name: str | None = None,
                 higher_is_better: bool | None = None, strict_mode: bool = False):
        root = _require_dir(Path(root), "dataset root")
        ann = root / (annotation or self.default_annotation)
        keys = ("dist_img", "ref_img", "score")
        if ann.suffix.lower() == ".mat":
            df = _read_mat_table(ann, keys, numeric=("score",))
            lines: Sequence[int] = range(1, len(df) + 1)  # entry numbers
        elif ann.suffix.lower() == ".txt":
            df, lines = _read_list_file(ann, self.list_columns)
        else:
            df = _read_csv(ann, keys, numeric=("score",))
            lines = range(2, len(df) + 2)
        _reject_duplicates([d.strip() for d in df["dist_img"]], df["score"].tolist(), ann, lines)
        refs = [r.strip() for r in df["ref_img"]]
        records = pd.DataFrame({
            "dist": [str(root / d.strip()) for d in df["dist_img"]],
            "ref": [str(root / r) for r in refs],
            "score": df["score"].to_numpy(dtype=np.float64),
            "group": [_stem(r) for r in refs],
        })
        super().__init__(
            root, records, name=self.display_name,
            score_name=score_name or self.default_score_name,
            higher_is_better=self.default_higher_is_better if higher_is_better is None else higher_is_better,
            transform=transform, annotation=ann, strict_mode=strict_mode,
        )


@register_fr_dataset("liu13")
class Liu13FR(_PairTableFR):
    """Liu13 (Liu et al., 2013): motion-deblurring results rated by humans, with their sharp originals.

    Layout (assumed; see below)::

        root/liu13.csv      header ``dist_img,ref_img,score``; paths relative to root,
                            e.g. ``deblurred/img01_alg3.png,reference/img01.png,0.82``
        root/<images>       wherever the table points (any sub-folders)

    ``liu13.mat`` with variables ``dist_img``, ``ref_img``, ``score`` is read as well
    (``annotation="liu13.mat"``). ``score`` = subjective quality score, higher is better.

    Why a table: the release's score files are distributed from the authors' project page only, and no
    public source documents their format (its images pair a sharp ``gt`` with deblurred results named after
    the method, e.g. ``shan08``); build the per-image table above once from the release (one row per
    deblurred image).
    """

    display_name = "Liu13"
    default_annotation = "liu13.csv"
    default_score_name = "subjective score"


@register_fr_dataset("ma17")
class Ma17FR(_PairTableFR):
    """Ma17 (Ma et al., 2017): super-resolved images (9 SR methods, 6 scale/kernel settings of 30
    BSD200 ground truths) rated 0-10 by humans.

    Layout (assumed; see below)::

        root/ma17.csv       header ``dist_img,ref_img,score``; paths relative to root,
                            e.g. ``sr/img001_x2_k1_srcnn.png,gt/img001.png,6.3``
        root/<images>       wherever the table points

    ``ma17.mat`` with variables ``dist_img``, ``ref_img``, ``score`` is read as well. ``score`` = mean
    opinion score (0-10), higher is better; the reference is the HR ground truth, of the SR size.

    Why a table: the release stores the scores as a matrix (``mean40`` in
    ``SubjectData/SubjectScore_Final_RightOrderPSNR.mat``; the authors' training code flattens it
    column-major into 180 x 8 = 1440 values, ``chaoma99/sr-metric``), and the mapping of its rows and
    columns to image files is documented nowhere (it is an open question in that repository's issues), so
    this reader takes the flattened per-image table above rather than guess it.
    """

    display_name = "Ma17"
    default_annotation = "ma17.csv"
    default_score_name = "MOS (0-10)"


@register_fr_dataset("tqd")
class TQDFR(_PairTableFR):
    """TQD, the texture quality database of Ding et al. (2020, DISTS): 10 texture references, each with 15
    distorted or resampled versions rated against it (150 pairs).

    Layout (as distributed)::

        root/TQD_mos.txt    150 lines ``<ref path>\t<dist path>\t<score>``, no header, paths relative to
                            root, e.g. ``images/5-0.png<TAB>images/5-1.png<TAB>0.71471``
        root/images/        ``<k>-0.png`` (reference k) and ``<k>-1.png`` ... ``<k>-15.png``

    Lines split on tabs (or on spaces when there is no tab). ``score`` = mean opinion score in [0, 1],
    higher is better (pass ``higher_is_better=False`` for a difference score); ``group`` = reference stem.
    The layout is that of the ``TQD_mos.txt`` distributed with the database (as read, e.g., by the
    MLLMs-for-IQA benchmark of the DISTS authors' group). A ``dist_img,ref_img,score`` CSV or ``.mat``
    table is read as well (``annotation="tqd.csv"``).
    """

    display_name = "TQD"
    default_annotation = "TQD_mos.txt"
    default_score_name = "MOS (0-1)"
    list_columns = ("ref_img", "dist_img", "score")


_KONIQ_SCORE_NAMES = {"MOS_zscore": "MOS_zscore (1-100)", "MOS": "MOS (1-5)"}


@register_nr_dataset("koniq10k")
class KonIQ10kNR(NRDataset):
    """KonIQ-10k (Hosu et al., 2020): 10,073 in-the-wild images with crowd MOS.

    Layout (as released)::

        root/koniq10k_scores_and_distributions.csv  columns include ``image_name``, ``MOS`` (1-5),
                                                    ``SD``, ``MOS_zscore`` (1-100)
        root/1024x768/                              the images (``826373.jpg`` ...)

    ``score`` = ``score_column`` (default ``MOS_zscore``), higher is better; ``group`` = image stem
    (every image is its own content). Other numeric columns are kept in ``records``.
    """

    def __init__(self, root: str | Path, transform: ImageTransform | None = None, *,
                 score_column: str = "MOS_zscore", image_dir: str = "1024x768",
                 annotation: str = "koniq10k_scores_and_distributions.csv", strict_mode: bool = False):
        root = _require_dir(Path(root), "dataset root")
        ann = root / annotation
        df = _read_csv(ann, required=("image_name", score_column), numeric=(score_column,))
        images = _require_dir(root / image_dir, "image")
        names = [n.strip() for n in df["image_name"]]
        _reject_duplicates(names, df[score_column].tolist(), ann, range(2, len(df) + 2))
        records = pd.DataFrame({
            "image": [str(images / n) for n in names],
            "score": df[score_column].to_numpy(dtype=np.float64),
            "group": [_stem(n) for n in names],
        })
        for c in ("MOS", "SD", "MOS_zscore"):
            if c in df.columns and c != score_column:
                records[c] = pd.to_numeric(df[c], errors="coerce").to_numpy()
        super().__init__(root, records, name="KonIQ-10k",
                         score_name=_KONIQ_SCORE_NAMES.get(score_column, score_column),
                         higher_is_better=True, transform=transform, annotation=ann, strict_mode=strict_mode)


# ----------------------------------------------------------------------------------------------
# Paired transforms
# ----------------------------------------------------------------------------------------------


def _pair_size(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        h = w = size
    else:
        h, w = (int(s) for s in size)
    if h <= 0 or w <= 0:
        raise ValueError(f"crop size must be positive, got {size!r}")
    return h, w


def _check_crop(images: Sequence[Tensor], h: int, w: int, what: str) -> tuple[int, int]:
    """Common (H, W) of ``images``; raises InputSizeError when they differ or are smaller than (h, w)."""
    shapes = [tuple(x.shape[-2:]) for x in images]
    if len(set(shapes)) != 1:
        raise InputSizeError(f"{what}: distorted and reference sizes differ: {shapes[0]} vs {shapes[1]} (H, W)")
    H, W = shapes[0]
    if H < h or W < w:
        raise InputSizeError(f"{what}: crop size {(h, w)} is larger than the image size {(H, W)} (H, W)")
    return H, W


class _PairedBase:
    """Calling convention of the paired transforms: ``t(dist, ref) -> (dist, ref)``; ``t(image) -> image``."""

    def _apply(self, images: list[Tensor]) -> list[Tensor]:
        raise NotImplementedError

    def __call__(self, dist: Tensor, ref: Tensor | None = None):
        if ref is None:
            return self._apply([dist])[0]
        d, r = self._apply([dist, ref])
        return d, r


class PairedRandomCrop(_PairedBase):
    """Crop the same random ``size`` window from both images (shape ``(..., H, W)``).

    Args:
        size: crop side (int) or ``(h, w)``.
        generator: source of the offsets; with a seeded generator (or ``seed``) the sequence of
            windows is reproducible. Note that DataLoader workers each get a copy of it.
        seed: shorthand for ``generator=torch.Generator().manual_seed(seed)``.

    Raises:
        InputSizeError: an image is smaller than ``size``, or the two images differ in size
            (the message gives both sizes).
    """

    def __init__(self, size: int | Sequence[int], generator: torch.Generator | None = None, *,
                 seed: int | None = None):
        self.size = _pair_size(size)
        if generator is None and seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.generator = generator

    def _apply(self, images: list[Tensor]) -> list[Tensor]:
        h, w = self.size
        H, W = _check_crop(images, h, w, type(self).__name__)
        top = int(torch.randint(0, H - h + 1, (1,), generator=self.generator))
        left = int(torch.randint(0, W - w + 1, (1,), generator=self.generator))
        return [x[..., top:top + h, left:left + w] for x in images]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class PairedCenterCrop(_PairedBase):
    """Crop the central ``size`` window (int or ``(h, w)``) of both images; offsets round down.

    Raises:
        InputSizeError: an image is smaller than ``size`` or the two sizes differ.
    """

    def __init__(self, size: int | Sequence[int]):
        self.size = _pair_size(size)

    def _apply(self, images: list[Tensor]) -> list[Tensor]:
        h, w = self.size
        H, W = _check_crop(images, h, w, type(self).__name__)
        top, left = (H - h) // 2, (W - w) // 2
        return [x[..., top:top + h, left:left + w] for x in images]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size})"


class PairedResize(_PairedBase):
    """Resize each image so its shorter side is ``shorter_side``, keeping the aspect ratio.

    The longer side becomes ``round(long * shorter_side / short)``. Bilinear interpolation with
    antialiasing (``align_corners=False``), output clamped to ``[0, 1]``; the policy of the original
    DISTS ``prepare_image`` (shorter side 256). Accepts ``(C, H, W)`` or ``(B, C, H, W)``.
    """

    def __init__(self, shorter_side: int):
        if int(shorter_side) <= 0:
            raise ValueError(f"shorter_side must be positive, got {shorter_side!r}")
        self.shorter_side = int(shorter_side)

    def _resize(self, x: Tensor) -> Tensor:
        H, W = x.shape[-2:]
        s = self.shorter_side
        if min(H, W) == s:
            return x
        size = (s, max(1, round(W * s / H))) if H <= W else (max(1, round(H * s / W)), s)
        batched = x if x.dim() == 4 else x.unsqueeze(0)
        y = F.interpolate(batched.float(), size=size, mode="bilinear", align_corners=False, antialias=True)
        y = y.clamp_(0.0, 1.0).to(x.dtype)
        return y if x.dim() == 4 else y.squeeze(0)

    def _apply(self, images: list[Tensor]) -> list[Tensor]:
        return [self._resize(x) for x in images]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(shorter_side={self.shorter_side})"


class PairedCompose(_PairedBase):
    """Apply paired transforms in order, e.g. ``PairedCompose([PairedResize(256), PairedRandomCrop(224)])``.

    Any callable with the paired convention works (``t(dist, ref) -> (dist, ref)``, ``t(image) -> image``).
    """

    def __init__(self, transforms: Sequence[Callable]):
        self.transforms = list(transforms)

    def _apply(self, images: list[Tensor]) -> list[Tensor]:
        for t in self.transforms:
            out = t(*images)
            images = [out] if isinstance(out, Tensor) else list(out)
        return images

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.transforms!r})"
