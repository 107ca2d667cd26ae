"""Atomic file writes: write to a temporary file in the same folder, fsync, then rename.

A crash leaves either the old file or the new one, never a half-written file. A writer killed before the
rename leaves its temporary file ``.<name>.<8 random chars>.tmp`` behind; :func:`remove_orphan_temps` deletes
those. It must only run while no other process writes into the folder (for a run directory: while holding the
run's lock, :meth:`asymlib.runs.Run.lock`), otherwise it can delete a live writer's file.

Written files get the mode of a plain ``open(path, "w")``: ``0o666 & ~umask`` (``mkstemp`` alone gives 0600).

A write that fails for lack of space (``ENOSPC``/``EDQUOT``, or ``torch.save``'s ``file write failed`` /
``unexpected pos`` errors) raises :class:`~asymlib.errors.DiskFullError` naming the target file; the temporary
file is removed and the target keeps its previous content (or stays absent).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Any, Iterator

import torch

from .errors import DiskFullError

__all__ = ["append_text", "atomic_path", "atomic_write_text", "atomic_write_json", "atomic_torch_save", "atomic_write_csv",
           "current_umask", "remove_orphan_temps"]

_TEMP_SUFFIX = ".tmp"
_ORPHAN_RE = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")  # tempfile.mkstemp(prefix=".<name>.", suffix=".tmp")
_UMASK_LOCK = threading.Lock()


def _umask_from_proc() -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return None


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``).

    Elsewhere it is set and restored under a lock, which is safe against other callers of this function but
    not against threads creating files at the same instant.
    """
    mask = _umask_from_proc()
    if mask is not None:
        return mask
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def _temp_file_for(target: Path) -> Path:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=_TEMP_SUFFIX, dir=target.parent)
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, 0o666 & ~current_umask())
    finally:
        os.close(fd)
    return Path(tmp_name)


def remove_orphan_temps(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Delete the temporary files ``.<name>.XXXXXXXX.tmp`` that killed atomic writers left in ``folder``.

    Only call it while no other process writes into ``folder`` (hold the run's lock): a live writer's
    temporary file looks exactly like an orphan. Returns the deleted paths.
    """
    root = Path(folder)
    if not root.is_dir():
        return []
    candidates = root.rglob(f".*{_TEMP_SUFFIX}") if recursive else root.glob(f".*{_TEMP_SUFFIX}")
    removed: list[Path] = []
    for p in sorted(candidates):
        if _ORPHAN_RE.match(p.name) and p.is_file() and not p.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed.append(p)
    return removed


_SPACE_ERRNOS = (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
# what torch.save's C++ writer (caffe2 inline_container.cc) raises when the disk fills up mid-write
_TORCH_WRITE_FAILED = re.compile(r"file write failed|unexpected pos|PytorchStreamWriter failed writing")


def _free_space(folder: Path) -> str:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return ""
    return f"; {st.f_bavail * st.f_frsize / 2**20:.1f} MiB free on {folder} now"


def _disk_full(target: Path, exc: BaseException, detail: str) -> DiskFullError:
    err = DiskFullError(f"no space left on device: cannot write {target} ({detail}){_free_space(target.parent)}; "
                        f"nothing was written there (its previous content, if any, is kept): free space and retry")
    err.errno, err.filename = errno.ENOSPC, str(target)
    return err


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``.

    Raises:
        DiskFullError: the write (in the ``with`` body, the fsync or the temporary file's creation) failed with
            ``ENOSPC``/``EDQUOT``; the temporary file is removed and ``path`` left as it was.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp = _temp_file_for(target)
    except OSError as exc:
        if exc.errno in _SPACE_ERRNOS:
            raise _disk_full(target, exc, f"creating its temporary file: {exc.strerror}") from exc
        raise
    try:
        yield tmp
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except DiskFullError:
        raise
    except OSError as exc:
        if exc.errno in _SPACE_ERRNOS:
            raise _disk_full(target, exc, f"{type(exc).__name__}: {exc}") from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def append_text(path: str | Path, text: str) -> None:
    """Append ``text`` to ``path`` (a log); a write that fails for lack of space raises :class:`DiskFullError`
    naming the file (a torn last line is what readers of such logs skip)."""
    target = Path(path)
    try:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        if exc.errno in _SPACE_ERRNOS:
            err = DiskFullError(f"no space left on device: cannot append to {target} ({exc.strerror})"
                                f"{_free_space(target.parent)}; free space and retry (a torn last line is dropped "
                                f"when the run resumes)")
            err.errno, err.filename = errno.ENOSPC, str(target)
            raise err from exc
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def atomic_write_json(path: str | Path, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` atomically; a full disk raises :class:`~asymlib.errors.DiskFullError` naming ``path``."""
    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:
            if _TORCH_WRITE_FAILED.search(str(exc)):
                raise _disk_full(Path(path), exc, f"torch.save: file write failed: {exc}") from exc
            raise
    return Path(path)


def atomic_write_csv(df: "Any", path: str | Path, **kwargs: Any) -> Path:
    """Write a pandas DataFrame as CSV atomically (``index=False`` unless given)."""
    kwargs.setdefault("index", False)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, **kwargs)
    return Path(path)
