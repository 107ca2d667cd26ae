"""Reading torch files (checkpoints, weights, stored results) with errors that name the file.

Every ``torch.load`` of asymlib goes through :func:`read_torch_file`: ``weights_only=True`` (no arbitrary pickles),
mapped to the CPU, and any failure (missing file, truncated zip, pickle refused by ``weights_only``, a file of
another format) raised as :class:`~asymlib.errors.CheckpointError` naming the file.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError

__all__ = ["read_torch_file"]


def read_torch_file(path: str | Path, what: str = "checkpoint", hint: str = "", expect_dict: bool = False) -> Any:
    """``torch.load(path, map_location="cpu", weights_only=True)``.

    Args:
        path: the file.
        what: how the message calls it (``"SR checkpoint"``, ``"NR-IQA checkpoint"``...).
        hint: appended to the message of an unreadable file (e.g. ``"; delete it to restart from scratch"``).
        expect_dict: refuse a file that does not hold a dict.

    Raises:
        CheckpointError: the file is missing, unreadable or corrupt (or, with ``expect_dict``, not a dict); the
            message names the file.
    """
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"{what} not found: {p}")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, foreign pickle refused by weights_only, empty file, EIO...
        raise CheckpointError(f"{what} {p} is corrupt or unreadable ({type(exc).__name__}: {exc}){hint}") from exc
    if expect_dict and not isinstance(obj, dict):
        raise CheckpointError(f"{what} {p} holds a {type(obj).__name__}, not a dict")
    return obj
