"""Correlation statistics for image quality assessment (IQA).

Conventions (VQEG / pyiqa):

- SRCC and KRCC are computed from ranks (Spearman rho, Kendall tau-b; ties get average ranks).
- PLCC is the Pearson correlation of the subjective scores with the predictions mapped through the
  4-parameter logistic

      f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2,

  fitted by least squares from the initial guess ``[max y, min y, mean x, std x / 4]``. The fit absorbs the
  direction of the relation, so a predictor that disagrees with the targets (a decreasing fit) still gets the
  positive correlation of its fitted prediction, as pyiqa and the VQEG reports compute it; SRCC/KRCC keep
  the sign. When the fit fails, PLCC is the linear correlation of the raw predictions.

All functions take 1-D numpy arrays, sequences or torch tensors and return Python floats.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import optimize, special, stats

from ..errors import ConfigError

__all__ = [
    "PROTOCOL_GLOBAL",
    "PROTOCOL_GLOBAL_LINEAR",
    "PROTOCOL_WITHIN_GROUP",
    "ArrayLike",
    "Logistic4Fit",
    "bootstrap_ci",
    "evaluate_iqa",
    "fit_logistic4",
    "fit_rescaling",
    "krcc",
    "logistic4",
    "plcc",
    "plcc_with_fit",
    "srcc",
]

ArrayLike = np.ndarray | Sequence[float] | Any  # ``Any`` covers torch.Tensor without importing torch

PROTOCOL_GLOBAL = "global, PLCC after 4-parameter logistic"
PROTOCOL_GLOBAL_LINEAR = "global, linear PLCC (logistic fit failed)"
PROTOCOL_WITHIN_GROUP = "within-group mean, linear PLCC"

_PARAM_NAMES = ("b1", "b2", "b3", "b4")
_MAXFEV = 20000


def _as_1d(x: ArrayLike, name: str = "array") -> np.ndarray:
    """Any 1-D array-like (numpy, list, torch tensor) -> float64 numpy vector."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().numpy()
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 0:
        arr = arr.reshape(1)
    elif arr.ndim > 1:
        if sum(s > 1 for s in arr.shape) > 1:
            raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
        arr = arr.reshape(-1)
    return arr


def _pair(pred: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p, t = _as_1d(pred, "pred"), _as_1d(target, "target")
    if p.shape != t.shape:
        raise ValueError(f"pred and target differ in length: {p.size} vs {t.size}")
    bad = ~(np.isfinite(p) & np.isfinite(t))
    if bad.any():
        raise ValueError(f"pred/target contain {int(bad.sum())} non-finite value(s)")
    return p, t


def _is_constant(x: np.ndarray) -> bool:
    return x.size == 0 or bool(np.all(x == x[0]))


def _group_members(groups: ArrayLike, n: int) -> list[np.ndarray]:
    """Indices of the items of every distinct group label (labels of any hashable dtype)."""
    labels = np.asarray(groups.detach().cpu().numpy() if hasattr(groups, "detach") else groups)
    if labels.shape != (n,):
        raise ValueError(f"groups must have one label per item ({n}), got shape {labels.shape}")
    _, inverse = np.unique(labels, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(np.bincount(inverse))[:-1])


# ----------------------------------------------------------------------------------------------
# Logistic mapping
# ----------------------------------------------------------------------------------------------
def logistic4(x: ArrayLike, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """The VQEG 4-parameter logistic ``(b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2``.

    Increasing in ``x`` when ``b1 > b2`` (``b1`` is the upper, ``b2`` the lower asymptote).
    Evaluated with ``scipy.special.expit``, so large arguments do not overflow.
    """
    x = _as_1d(x, "x")
    scale = max(abs(float(b4)), np.finfo(np.float64).tiny)
    return (b1 - b2) * special.expit((x - b3) / scale) + b2


def _logistic4_jac(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """Analytic Jacobian of :func:`logistic4` w.r.t. (b1, b2, b3, b4): shape (N, 4)."""
    a = max(abs(b4), np.finfo(np.float64).tiny)
    z = (x - b3) / a
    s = special.expit(z)
    ds = (b1 - b2) * s * (1.0 - s)
    return np.stack([s, 1.0 - s, -ds / a, -ds * z * math.copysign(1.0, b4) / a], axis=1)


@dataclass(frozen=True)
class Logistic4Fit:
    """A fitted 4-parameter logistic.

    Attributes:
        params: ``(b1, b2, b3, b4)`` as a float64 array of shape (4,). When ``success`` is False
            these are the initial guess (or the fixed values), not a fit.
        success: whether least squares converged to finite parameters.
        message: why the fit failed ("" on success).
        fixed: names of the parameters that were held fixed.
        input_sign: the raw input is multiplied by this before the logistic (``-1`` maps a
            lower-is-better score onto an increasing scale, see :func:`fit_rescaling`).
    """

    params: np.ndarray
    success: bool
    message: str = ""
    fixed: tuple[str, ...] = ()
    input_sign: float = 1.0

    def __call__(self, x: ArrayLike) -> np.ndarray:
        """Map raw values ``x`` (any shape-(N,) array-like) through the fitted logistic."""
        return logistic4(self.input_sign * _as_1d(x, "x"), *self.params)

    def as_dict(self) -> dict[str, float]:
        """``{"b1": ..., "b2": ..., "b3": ..., "b4": ...}``."""
        return {k: float(v) for k, v in zip(_PARAM_NAMES, self.params)}

    @property
    def increasing(self) -> bool:
        """True when the mapping increases with the (sign-corrected) input, i.e. ``b1 > b2``."""
        return bool(self.params[0] > self.params[1])


def fit_logistic4(x: ArrayLike, y: ArrayLike, fixed: Mapping[str, float] | None = None) -> Logistic4Fit:
    """Least-squares fit of :func:`logistic4` mapping ``x`` onto ``y``.

    Args:
        x: raw scores, shape (N,).
        y: targets (e.g. MOS), shape (N,).
        fixed: optional values for any of ``"b1", "b2", "b3", "b4"`` that are held constant;
            the others are fitted. Initial guess for free parameters:
            ``[max y, min y, mean x, std x / 4]``.

    Returns:
        A :class:`Logistic4Fit`. It never raises on a numerical failure: a non-converged fit,
        constant inputs or too few points give ``success=False`` with the reason in ``message``.
    """
    xv, yv = _pair(x, y)
    fixed = dict(fixed or {})
    unknown = set(fixed) - set(_PARAM_NAMES)
    if unknown:
        raise ConfigError(f"fixed: unknown logistic parameter(s) {sorted(unknown)}; expected {list(_PARAM_NAMES)}")

    init = {"b1": float(np.max(yv)) if yv.size else 1.0, "b2": float(np.min(yv)) if yv.size else 0.0,
            "b3": float(np.mean(xv)) if xv.size else 0.0, "b4": float(np.std(xv)) / 4.0 if xv.size else 1.0}
    init.update({k: float(v) for k, v in fixed.items()})
    free = [k for k in _PARAM_NAMES if k not in fixed]
    p0 = np.array([init[k] for k in _PARAM_NAMES])

    def result(params: np.ndarray, success: bool, message: str = "") -> Logistic4Fit:
        return Logistic4Fit(np.asarray(params, dtype=np.float64), success, message, tuple(sorted(fixed)))

    if not free:
        return result(p0, True)
    if xv.size < len(free) + 1:
        return result(p0, False, f"{xv.size} points are too few to fit {len(free)} parameter(s)")
    if _is_constant(xv):
        return result(p0, False, "x is constant")
    if init["b4"] == 0.0:
        return result(p0, False, "initial b4 is 0")

    free_idx = [_PARAM_NAMES.index(k) for k in free]

    def full(theta: np.ndarray) -> np.ndarray:
        p = p0.copy()
        p[free_idx] = theta
        return p

    def f(xx: np.ndarray, *theta: float) -> np.ndarray:
        return logistic4(xx, *full(np.asarray(theta)))

    def jac(xx: np.ndarray, *theta: float) -> np.ndarray:
        return _logistic4_jac(xx, *full(np.asarray(theta)))[:, free_idx]

    try:
        with warnings.catch_warnings():
            # An inestimable covariance is irrelevant here: only the point estimate is used.
            warnings.simplefilter("ignore", optimize.OptimizeWarning)
            theta, _ = optimize.curve_fit(f, xv, yv, p0=p0[free_idx], jac=jac, maxfev=_MAXFEV)
    except (RuntimeError, ValueError, FloatingPointError) as exc:
        return result(p0, False, f"curve_fit failed: {exc}")
    params = full(theta)
    if not np.all(np.isfinite(params)) or params[3] == 0.0:
        return result(p0, False, f"curve_fit returned degenerate parameters {params.tolist()}")
    return result(params, True)


def fit_rescaling(
    raw_scores: ArrayLike,
    mos: ArrayLike,
    *,
    higher_is_better: bool = True,
    mos_range: tuple[float, float] | None = None,
) -> Logistic4Fit:
    """Fit the paper's Appendix D rescaling of raw NR-IQA scores onto the scale [1, 100].

    Eq. 7: ``N_eta(x) = (eta1 - eta2) / (1 + exp(-(N(x) - eta3) / |eta4|)) + eta2`` with
    ``eta1 = 100`` and ``eta2 = 1`` fixed, so the mapping is increasing and bounded by (1, 100);
    ``eta3`` and ``eta4`` are fitted by least squares against ``mos``.

    Args:
        raw_scores: raw metric outputs ``N(x)``, shape (N,).
        mos: subjective scores of the same images, expected on [1, 100] (e.g. KonIQ-10k);
            pass ``mos_range=(lo, hi)`` to map another scale linearly onto [1, 100] first.
        higher_is_better: orientation of ``raw_scores``; a lower-is-better metric is negated
            before the fit so that larger rescaled values always mean higher quality.
        mos_range: the native ``(lo, hi)`` range of ``mos`` (``None``: already on [1, 100]).

    Returns:
        A :class:`Logistic4Fit` with ``params = (100, 1, eta3, eta4)``; call it on raw scores to
        rescale them (values lie in (1, 100)).
    """
    m = _as_1d(mos, "mos")
    if mos_range is not None:
        lo, hi = (float(v) for v in mos_range)
        if not hi > lo:
            raise ConfigError(f"mos_range must be (lo, hi) with hi > lo, got {mos_range}")
        m = 1.0 + 99.0 * (m - lo) / (hi - lo)
    sign = 1.0 if higher_is_better else -1.0
    fit = fit_logistic4(sign * _as_1d(raw_scores, "raw_scores"), m, fixed={"b1": 100.0, "b2": 1.0})
    return Logistic4Fit(fit.params, fit.success, fit.message, fit.fixed, input_sign=sign)


# ----------------------------------------------------------------------------------------------
# Point statistics
# ----------------------------------------------------------------------------------------------
def srcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Spearman rank correlation in [-1, 1]; NaN if either input is constant or has < 2 items."""
    p, t = _pair(pred, target)
    if p.size < 2 or _is_constant(p) or _is_constant(t):
        return math.nan
    return float(stats.spearmanr(p, t).statistic)


def krcc(pred: ArrayLike, target: ArrayLike) -> float:
    """Kendall rank correlation (tau-b) in [-1, 1]; NaN if either input is constant or has < 2 items."""
    p, t = _pair(pred, target)
    if p.size < 2 or _is_constant(p) or _is_constant(t):
        return math.nan
    return float(stats.kendalltau(p, t).statistic)


def _linear_plcc(p: np.ndarray, t: np.ndarray) -> float:
    if p.size < 2 or _is_constant(p) or _is_constant(t):
        return math.nan
    return float(np.corrcoef(p, t)[0, 1])


def plcc_with_fit(pred: ArrayLike, target: ArrayLike) -> tuple[float, Logistic4Fit]:
    """PLCC after the 4-parameter logistic fit, together with the fit itself.

    The value is ``corrcoef(fit(pred), target)`` in [-1, 1] for shape-(N,) inputs: the correlation of the
    fitted prediction with the targets (pyiqa / VQEG). A decreasing fit (predictions that disagree with the
    targets) gives a positive value too; SRCC tells the direction. If the fit fails (``fit.success`` is
    False) the linear PLCC of the raw predictions is returned instead.
    """
    p, t = _pair(pred, target)
    fit = fit_logistic4(p, t)
    if not fit.success:
        return _linear_plcc(p, t), fit
    return _linear_plcc(fit(p), t), fit


def plcc(pred: ArrayLike, target: ArrayLike, fit: bool = True) -> float:
    """Pearson linear correlation in [-1, 1].

    Args:
        fit: if True (the IQA convention), correlate after the 4-parameter logistic fit, falling
            back to linear PLCC when the fit fails (use :func:`plcc_with_fit` to know which);
            if False, plain linear PLCC.
    """
    if fit:
        return plcc_with_fit(pred, target)[0]
    return _linear_plcc(*_pair(pred, target))


# ----------------------------------------------------------------------------------------------
# Bootstrap
# ----------------------------------------------------------------------------------------------
def _check_level(level: float) -> None:
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), got {level}")


def _percentile_interval(values: np.ndarray, level: float) -> tuple[float, float]:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(values, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def bootstrap_ci(
    stat_fn: Callable[..., float | np.ndarray],
    *arrays: ArrayLike,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
    groups: ArrayLike | None = None,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of ``stat_fn(*arrays)``.

    Args:
        stat_fn: the statistic. Called as ``stat_fn(*resampled_arrays)`` once per resample, or,
            with ``vectorized=True``, once with arrays of shape (n_resamples, N) and expected to
            return shape (n_resamples,) (reduce over the last axis).
        arrays: equally long 1-D arrays, resampled jointly (the same indices for all).
        n_resamples: number of bootstrap resamples (>= 1).
        seed: seed of the numpy generator; the same seed gives the same interval.
        level: confidence level in (0, 1).
        groups: optional group label per item (shape (N,)). When given, whole groups are drawn
            with replacement and their items concatenated (a group drawn twice appears twice),
            so dependence inside a group is kept. Not combinable with ``vectorized`` (the
            resamples differ in length).

    Returns:
        ``(low, high)``; resamples where the statistic is not finite are ignored, and
        ``(nan, nan)`` is returned if none is.
    """
    if n_resamples < 1:
        raise ConfigError(f"n_resamples must be >= 1, got {n_resamples}")
    _check_level(level)
    if not arrays:
        raise ConfigError("bootstrap_ci needs at least one array")
    cols = [_as_1d(a, f"arrays[{i}]") for i, a in enumerate(arrays)]
    n = cols[0].size
    if any(c.size != n for c in cols):
        raise ValueError(f"arrays differ in length: {[c.size for c in cols]}")
    if n == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)

    if groups is None:
        idx = rng.integers(0, n, size=(n_resamples, n))
        if vectorized:
            values = np.asarray(stat_fn(*(c[idx] for c in cols)), dtype=np.float64).reshape(-1)
        else:
            values = np.array([stat_fn(*(c[row] for c in cols)) for row in idx], dtype=np.float64)
        return _percentile_interval(values, level)

    if vectorized:
        raise ConfigError("vectorized=True cannot be combined with groups")
    members = _group_members(groups, n)
    draws = rng.integers(0, len(members), size=(n_resamples, len(members)))
    values = np.empty(n_resamples)
    for b, row in enumerate(draws):
        sel = np.concatenate([members[g] for g in row])
        values[b] = stat_fn(*(c[sel] for c in cols))
    return _percentile_interval(values, level)


# ----------------------------------------------------------------------------------------------
# Vectorized helpers for evaluate_iqa
# ----------------------------------------------------------------------------------------------
def _weighted_pearson_rows(a: np.ndarray, b: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pearson correlation of (B, N) or (1, N) values under weights w (B, N) -> (B,).

    Rows where either side is constant (relative variance below 1e-20) give NaN.
    """
    total = w.sum(axis=-1)

    def centered(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = (w * v).sum(axis=-1) / total
        dev = v - mean[:, None]
        var = (w * dev * dev).sum(axis=-1) / total
        scale = np.abs(v).max(axis=-1) ** 2
        return dev, np.where(var > 1e-20 * scale, var, np.nan)

    da, va = centered(a)
    db, vb = centered(b)
    return (w * da * db).sum(axis=-1) / total / np.sqrt(va * vb)


def _resampled_ranks(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average ranks (B, N) of the items of bootstrap resamples, without sorting each resample.

    A resample is given by the multiplicities ``w`` (B, N) of the original items. The rank of
    item i in resample b is the number of drawn values below x_i plus (copies of x_i + 1) / 2,
    which follows from cumulative sums over the distinct values, sorted once.
    """
    uniq, inv = np.unique(x, return_inverse=True)
    rows, u = w.shape[0], uniq.size
    flat = (np.arange(rows)[:, None] * u + inv[None, :]).ravel()
    per_value = np.bincount(flat, weights=w.ravel(), minlength=rows * u).reshape(rows, u)
    below = np.cumsum(per_value, axis=1) - per_value
    return (below + (per_value + 1.0) / 2.0)[:, inv]


def _bootstrap_global(
    p: np.ndarray, t: np.ndarray, mapped: np.ndarray, n_resamples: int, seed: int, chunk: int = 100
) -> dict[str, np.ndarray]:
    """Item-bootstrap SRCC, KRCC and (fixed-mapping) PLCC: arrays of shape (n_resamples,)."""
    n = p.size
    rng = np.random.default_rng(seed)
    out = {k: np.empty(n_resamples) for k in ("srcc", "krcc", "plcc")}
    for start in range(0, n_resamples, chunk):
        c = min(chunk, n_resamples - start)
        idx = rng.integers(0, n, size=(c, n))
        # Multiplicity of every original item in every resample: (c, n).
        w = np.bincount((idx + n * np.arange(c)[:, None]).ravel(), minlength=c * n).reshape(c, n).astype(np.float64)
        sl = slice(start, start + c)
        out["srcc"][sl] = _weighted_pearson_rows(_resampled_ranks(p, w), _resampled_ranks(t, w), w)
        out["plcc"][sl] = _weighted_pearson_rows(mapped[None, :], t[None, :], w)
        for j in range(c):
            rp, rt = p[idx[j]], t[idx[j]]
            out["krcc"][start + j] = (
                np.nan if _is_constant(rp) or _is_constant(rt) else stats.kendalltau(rp, rt).statistic
            )
    return out


# ----------------------------------------------------------------------------------------------
# Evaluation protocols
# ----------------------------------------------------------------------------------------------
def _evaluate_global(p: np.ndarray, t: np.ndarray, n_resamples: int, seed: int, level: float) -> dict[str, Any]:
    """SRCC/KRCC/PLCC over all items; PLCC of the logistic-fitted prediction (see :func:`plcc_with_fit`).

    The bootstrap keeps the logistic mapping fitted on all items fixed (refitting it on
    every resample would cost one nonlinear least-squares fit each), so the PLCC interval
    does not include the uncertainty of the fit itself.
    """
    plcc_value, fit = plcc_with_fit(p, t)
    mapped = fit(p) if fit.success else p
    out: dict[str, Any] = {
        "srcc": srcc(p, t), "krcc": krcc(p, t), "plcc": plcc_value,
        "n": int(p.size), "protocol": PROTOCOL_GLOBAL if fit.success else PROTOCOL_GLOBAL_LINEAR,
        "logistic_fit": fit.success, "logistic_params": fit.as_dict(),
    }
    if n_resamples > 0 and p.size > 1:
        boot = _bootstrap_global(p, t, mapped, n_resamples, seed)
        for key, values in boot.items():
            out[f"{key}_low"], out[f"{key}_high"] = _percentile_interval(values, level)
    return out


def _evaluate_within_group(
    p: np.ndarray, t: np.ndarray, groups: ArrayLike, n_resamples: int, seed: int, level: float
) -> dict[str, Any]:
    """Per-group SRCC/KRCC/linear PLCC averaged over groups; bootstrap resamples groups."""
    members = _group_members(groups, p.size)
    per_group: list[tuple[float, float, float]] = []
    skipped = 0
    for m in members:
        gp, gt = p[m], t[m]
        if m.size < 3 or _is_constant(gp) or _is_constant(gt):
            skipped += 1
            continue
        per_group.append((stats.spearmanr(gp, gt).statistic, stats.kendalltau(gp, gt).statistic,
                          float(np.corrcoef(gp, gt)[0, 1])))
    values = np.asarray(per_group, dtype=np.float64).reshape(-1, 3)
    means = values.mean(axis=0) if values.shape[0] else np.full(3, np.nan)
    out: dict[str, Any] = {
        "srcc": float(means[0]), "krcc": float(means[1]), "plcc": float(means[2]),
        "n": int(p.size), "protocol": PROTOCOL_WITHIN_GROUP, "logistic_fit": False,
        "n_groups": values.shape[0], "n_groups_skipped": skipped,
    }
    if n_resamples > 0 and values.shape[0] > 0:
        draws = np.random.default_rng(seed).integers(0, values.shape[0], size=(n_resamples, values.shape[0]))
        boot = values[draws].mean(axis=1)  # (B, 3)
        for j, key in enumerate(("srcc", "krcc", "plcc")):
            out[f"{key}_low"], out[f"{key}_high"] = _percentile_interval(boot[:, j], level)
    return out


def evaluate_iqa(
    pred: ArrayLike,
    target: ArrayLike,
    *,
    pred_higher_is_better: bool,
    target_higher_is_better: bool,
    groups: ArrayLike | None = None,
    n_resamples: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, Any]:
    """Correlate metric predictions with subjective (or synthetic) quality labels.

    Both inputs are first oriented so that larger means better quality, hence a positive SRCC,
    KRCC or linear PLCC means agreement (e.g. a metric distance is lower-is-better; KADID-10K
    DMOS and TID2013 MOS are higher-is-better; synthetic distortion levels are lower-is-better).

    Protocols:
        ``groups=None``: global SRCC/KRCC and the PLCC of the 4-parameter-logistic-fitted
        prediction (the fit absorbs the direction, so this PLCC is positive for a disagreeing
        metric too; linear PLCC if the fit fails, ``protocol`` says so); item bootstrap with the
        fitted mapping held fixed.
        ``groups`` given: the within-group protocol of the synthetic benchmark, whose labels
        are distortion levels rather than MOS and only comparable inside a group. SRCC, KRCC
        and linear PLCC are computed per group and averaged; groups with fewer than 3 items or
        constant predictions/labels are skipped (``n_groups_skipped``); the bootstrap resamples
        groups.

    Args:
        pred: metric outputs, shape (N,).
        target: quality labels, shape (N,).
        groups: optional group label per item, shape (N,).
        n_resamples: bootstrap resamples for the intervals (0: no intervals, NaN bounds).
        seed, level: bootstrap seed and confidence level.

    Returns:
        ``{"srcc", "srcc_low", "srcc_high", "krcc", "krcc_low", "krcc_high", "plcc",
        "plcc_low", "plcc_high", "n", "protocol", "logistic_fit", ...}`` with Python scalars;
        the global protocol adds ``logistic_params``, the grouped one ``n_groups`` and
        ``n_groups_skipped``.
    """
    _check_level(level)
    if n_resamples < 0:
        raise ConfigError(f"n_resamples must be >= 0, got {n_resamples}")
    p, t = _pair(pred, target)
    p = p if pred_higher_is_better else -p
    t = t if target_higher_is_better else -t

    if groups is None:
        out = _evaluate_global(p, t, n_resamples, seed, level)
    else:
        out = _evaluate_within_group(p, t, groups, n_resamples, seed, level)
    for key in ("srcc", "krcc", "plcc"):
        out.setdefault(f"{key}_low", math.nan)
        out.setdefault(f"{key}_high", math.nan)
    order = ["srcc", "srcc_low", "srcc_high", "krcc", "krcc_low", "krcc_high", "plcc", "plcc_low", "plcc_high",
             "n", "protocol"]
    return {**{k: out[k] for k in order}, **{k: v for k, v in out.items() if k not in order}}
