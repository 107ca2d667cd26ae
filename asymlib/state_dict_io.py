"""Read a model's weights file and load it strictly, with errors that name the file and every mismatch.

Used by ``create_sr_model(..., weights=path)`` and ``create_discriminator(..., weights=path)``. Files are read
with ``torch.load(weights_only=True)``; a weights file is either a bare state dict or a dict holding one under
a known key (official SwinIR / BasicSR files: ``"params"``, ``"params_ema"``; asymlib's ``generator.pt`` and
``discriminator.pt``: ``"state_dict"``). A ``module.`` prefix on every key (a model saved from
DistributedDataParallel) is removed.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .errors import CheckpointError
from .torchfile import read_torch_file

__all__ = ["read_state_dict", "load_state_dict_strict", "load_weights_into"]

BARE = "<bare>"  # where-label of a file that is the state dict itself


def _listing(items: Sequence[str], limit: int = 6) -> str:
    return ", ".join(items[:limit]) + (f", ... ({len(items)} in all)" if len(items) > limit else "")


def read_state_dict(path: str | Path, keys: Sequence[str], key: str | None = None, what: str = "weights"
                    ) -> tuple[dict[str, torch.Tensor], str]:
    """Read a state dict from ``path``; returns it and where it was found (one of ``keys``, or ``"<bare>"``).

    Args:
        path: the file.
        keys: top-level entries that may hold the state dict, searched in order; if none is present the
            whole dict is the state dict.
        key: take exactly this entry instead.
        what: how error messages call the file (``"SR weights"``...).

    Raises:
        CheckpointError: missing or unreadable file, not a dict, ``key`` absent, or non-tensor entries; the
            message names the file.
    """
    p = Path(path)
    obj: Any = read_torch_file(p, what=f"{what} file")
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{p} holds a {type(obj).__name__}, not a state dict or a dict of them")
    if key is not None:
        if not isinstance(obj.get(key), Mapping):
            raise CheckpointError(f"{p} has no state dict under {key!r}; top-level keys: "
                                  f"{_listing(sorted(map(str, obj)))}")
        where = key
    else:
        where = next((k for k in keys if isinstance(obj.get(k), Mapping)), BARE)
    state = obj if where == BARE else obj[where]
    bad = sorted(str(k) for k, v in state.items() if not isinstance(v, torch.Tensor))
    if bad:
        hint = f" (a weights file holds one under {', '.join(map(repr, keys))}, or is one)" if keys else ""
        raise CheckpointError(f"{p}: entries {_listing(bad)} of {where} are not tensors; expected a state dict{hint}")
    sd = {str(k): v for k, v in state.items()}
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd, where


def load_state_dict_strict(model: nn.Module, sd: Mapping[str, torch.Tensor], source: str, model_desc: str = ""
                           ) -> None:
    """``model.load_state_dict(sd, strict=True)`` after checking keys and shapes.

    Raises:
        CheckpointError: naming ``source``, ``model_desc`` and the first missing, unexpected and
            mismatched-shape keys.
    """
    own = model.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = sorted(f"{k} {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(sd) if sd[k].shape != own[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{label} {_listing(items)}" for label, items in
                 (("missing keys:", missing), ("unexpected keys:", unexpected), ("shape mismatches:", shapes))
                 if items]
        desc = f" ({model_desc})" if model_desc else ""
        raise CheckpointError(f"{source} does not match the model{desc}: " + "; ".join(parts))
    model.load_state_dict(sd, strict=True)


def load_weights_into(model: nn.Module, path: str | Path, keys: Sequence[str], what: str = "weights",
                      model_desc: str = "", key: str | None = None) -> str:
    """:func:`read_state_dict` then :func:`load_state_dict_strict`; returns where the state dict was found."""
    sd, where = read_state_dict(path, keys, key=key, what=what)
    load_state_dict_strict(model, sd, f"{what} {path} ({where})", model_desc)
    return where
