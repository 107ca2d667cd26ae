"""Progress bars of the library: ``tqdm.auto`` bars that a study turns off as a whole.

``python -m asymlib.study`` sets ``TQDM_DISABLE=1`` so that executed notebooks hold one line per finished run.
tqdm reads that variable, but its notebook bars pass ``disable`` explicitly and ignore it; :func:`tqdm` here
honours it for every kind of bar.
"""
from __future__ import annotations

import os
from typing import Any

__all__ = ["tqdm", "bars_disabled"]


def bars_disabled() -> bool:
    """True when ``TQDM_DISABLE`` is set to a true value (``1``, ``true``, ``yes``)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm(*args, **kwargs)``, disabled when :func:`bars_disabled`."""
    from tqdm.auto import tqdm as _tqdm

    kwargs["disable"] = bool(kwargs.get("disable", False)) or bars_disabled()
    return _tqdm(*args, **kwargs)
