"""Content-disjoint splits: items that share a group (reference image, content id) stay together."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError

__all__ = ["group_split"]


def group_split(groups: Sequence[str] | np.ndarray, fractions: Sequence[float] = (0.6, 0.2, 0.2),
                seed: int = 0) -> tuple[np.ndarray, ...]:
    """Split item indices by group with a seeded shuffle of the unique groups.

    ``round(n_groups * f)`` groups go to each part but the last, which takes the rest. Returns one sorted
    index array per fraction.
    """
    fr = np.asarray(fractions, dtype=float)
    if fr.ndim != 1 or len(fr) < 2 or (fr < 0).any() or abs(fr.sum() - 1.0) > 1e-6:
        raise ConfigError(f"split fractions must be >= 0 and sum to 1, got {list(fractions)}")
    g = np.asarray(groups).astype(str)
    uniq = np.unique(g)
    np.random.default_rng(seed).shuffle(uniq)
    counts = [int(round(len(uniq) * f)) for f in fr[:-1]]
    bounds = np.cumsum([0] + counts)
    if bounds[-1] > len(uniq):
        raise ConfigError(f"{len(uniq)} groups cannot be split as {list(fractions)}")
    parts = [uniq[a:b] for a, b in zip(bounds[:-1], bounds[1:])] + [uniq[bounds[-1]:]]
    return tuple(np.sort(np.flatnonzero(np.isin(g, p))) for p in parts)
