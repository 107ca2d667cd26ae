"""A decoded, memory-mapped copy of an HR image folder, so that training crops skip PNG decoding.

Decoding a whole 2K DIV2K PNG for every 256-px crop costs about 0.1 s per item; at the paper's batch of 32
that keeps a GPU waiting. :func:`prepare_hr_store` decodes each image once into an uncompressed ``uint8``
``(H, W, 3)`` ``.npy`` file; :class:`~asymlib.sr.data.PairedSRDataset` then reads a crop as a slice of a
memory-mapped array (the operating system's page cache keeps the hot images in memory). The crops are
bit-identical to those cut from the decoded PNG.

    python -m asymlib.sr.store DATA/DIV2K/DIV2K_train_HR      # writes DATA/DIV2K/DIV2K_train_HR.npystore/

A store is used only while its manifest matches the folder (file names, sizes and modification times);
a changed folder falls back to decoding and says so once.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_path, atomic_write_json
from ..errors import ImageReadError

__all__ = ["STORE_SUFFIX", "store_dir", "prepare_hr_store", "open_hr_store", "main"]

STORE_SUFFIX = ".npystore"
_MANIFEST = "manifest.json"


def store_dir(folder: str | Path) -> Path:
    """Where the store of ``folder`` lives: a sibling folder ``<folder>.npystore``."""
    folder = Path(folder)
    return folder.with_name(folder.name + STORE_SUFFIX)


def _fingerprint(files: list[Path]) -> dict[str, list[int]]:
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in files}


def _image_files(folder: Path) -> list[Path]:
    from .data import IMAGE_EXTENSIONS

    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def prepare_hr_store(folder: str | Path, log=print) -> Path:
    """Decode every image of ``folder`` once into ``<folder>.npystore/<stem>.npy`` (uint8, H x W x 3).

    Images already stored with the same size and modification time are kept. Returns the store folder.

    Raises:
        ImageReadError: an unreadable or non-RGB file (named).
    """
    folder = Path(folder)
    files = _image_files(folder)
    out = store_dir(folder)
    out.mkdir(parents=True, exist_ok=True)
    old = _read_manifest(out)
    fingerprint = _fingerprint(files)
    for i, path in enumerate(files, 1):
        target = out / f"{path.stem}.npy"
        if old.get(path.name) == fingerprint[path.name] and target.is_file():
            continue
        try:
            with Image.open(path) as im:
                im.load()
                if im.mode != "RGB":
                    raise ImageReadError(f"{path}: image mode is {im.mode!r}; HR images must be stored as RGB")
                arr = np.ascontiguousarray(np.asarray(im, dtype=np.uint8))
        except Image.DecompressionBombError as exc:
            from ..imageio import decompression_bomb_message

            raise ImageReadError(decompression_bomb_message(path, exc)) from exc
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageReadError(f"cannot decode image {path}: {exc}") from exc
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, arr)
        if log is not None and (i % 100 == 0 or i == len(files)):
            log(f"[store] {i}/{len(files)} images of {folder} decoded into {out}")
    atomic_write_json(out / _MANIFEST, {"folder": folder.name, "files": fingerprint})
    return out


def _read_manifest(out: Path) -> dict[str, list[int]]:
    try:
        return json.loads((out / _MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return {}


def open_hr_store(folder: str | Path, files: list[Path]) -> dict[str, Path] | None:
    """The ``.npy`` files of ``files`` by stem (open them with ``np.load(path, mmap_mode="r")``) when
    ``folder``'s store is current (same names, sizes and modification times); ``None`` otherwise."""
    out = store_dir(folder)
    manifest = _read_manifest(out)
    if not manifest or manifest != _fingerprint(files):
        return None
    arrays = {p.stem: out / f"{p.stem}.npy" for p in files}
    return arrays if all(a.is_file() for a in arrays.values()) else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m asymlib.sr.store", description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="HR image folders (e.g. DIV2K/DIV2K_train_HR)")
    args = ap.parse_args(argv)
    try:
        for folder in args.folders:
            print(f"[store] {prepare_hr_store(folder)}")
    except (ImageReadError, OSError) as exc:
        print(f"[store] error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
