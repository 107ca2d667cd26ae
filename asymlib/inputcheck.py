"""The input contract of every metric and evaluator call, checked once per call on the whole batch.

A metric takes two floating-point tensors ``(B, 3, H, W)`` (``B >= 1``; ``H, W`` at least the metric's minimum
size) of equal shape, on the metric's device, finite, with values in ``[0, 1]``. Anything else raises
:class:`~asymlib.errors.InputError` (:class:`~asymlib.errors.InputSizeError` for too small images) saying what
was given and what is expected.

Value range tolerance. Values within :data:`RANGE_TOLERANCE` (0.5) of ``[0, 1]``, i.e. in ``[-0.5, 1.5]``, are
accepted: an SR generator or an autoencoder fed to the metric as a loss overshoots ``[0, 1]`` slightly (ringing at
edges, typically by less than 0.1), and clamping its output would cut the gradient there. The band is half the
unit range on each side, which separates the two usual scaling mistakes from overshoot: an image scaled to
``[0, 255]`` has a maximum far above 1.5 unless it is black, and one scaled to ``[-1, 1]`` has a minimum below
-0.5 as soon as it holds a pixel darker than 0.25 in ``[0, 1]`` units (every natural image with some shadow).
Pass ``tolerance=None`` to accept any finite value.

Training losses. Inside :func:`generator_output` (entered by :func:`asymlib.sr.losses.generator_loss`, the one
place where a generator's output meets the metric as a loss: SR training, the SR benchmark step, the autoencoder
of Fig. 16) the *first* argument of a pair is only checked to be finite: a generator trained with a perceptual or
adversarial objective can leave ``[0, 1]`` by far as it diverges (the smoke autoencoder with ``per_adv`` reaches
values in the thousands within 30 steps), and that is the behaviour under study, not a caller's scaling mistake.
The reference keeps the full contract, and NaN/Inf outputs still raise (the SR trainer records them as a collapse).

Cost: one ``aminmax`` reduction per tensor (NaN propagates into both extremes, +-Inf into one) and a single
device-to-host transfer of the four extremes of a pair; the rest reads only shapes and dtypes.
"""
from __future__ import annotations

import contextlib
import math
from collections.abc import Collection, Iterator, Mapping
from contextvars import ContextVar

import torch

from .errors import InputError, InputSizeError

__all__ = ["RANGE_TOLERANCE", "check_image_batch", "check_image_pair", "check_image_values", "generator_output",
           "module_device"]

RANGE_TOLERANCE = 0.5
_GENERATOR_OUTPUT: ContextVar[bool] = ContextVar("asymlib_generator_output", default=False)
_CONTRACT = "a float tensor (B, 3, H, W) with values in [0, 1]"


def _describe(x: torch.Tensor) -> str:
    return f"{x.dtype} tensor of shape {tuple(x.shape)} on {x.device}"


def check_image_batch(x: object, *, name: str = "input", what: str = "metric", min_size: int | None = None
                      ) -> torch.Tensor:
    """Check everything but the values of one ``(B, 3, H, W)`` batch (type, dtype, shape, size); returns it.

    Reads no tensor data (no device synchronization).

    Raises:
        InputError: not a tensor, not floating point, not ``(B, 3, H, W)``, or an empty batch.
        InputSizeError: ``H`` or ``W`` below ``min_size``.
    """
    if not isinstance(x, torch.Tensor):
        hint = ""
        if type(x).__module__ == "numpy" and hasattr(x, "shape"):
            hint = (f" of shape {tuple(x.shape)} and dtype {x.dtype}; convert it with torch.from_numpy (an "  # type: ignore[attr-defined]
                    f"(H, W, 3) uint8 image: torch.from_numpy(a).permute(2, 0, 1)[None].float() / 255)")
        raise InputError(f"{what}: {name} is a {type(x).__module__}.{type(x).__qualname__}{hint}; expected "
                         f"{_CONTRACT}", cause="type", argument=name)
    if not x.is_floating_point():
        hint = " (divide 8-bit images by 255: x.float() / 255)" if x.dtype == torch.uint8 else ""
        raise InputError(f"{what}: {name} is a {_describe(x)}; expected {_CONTRACT}, in floating point{hint}",
                         cause="dtype", argument=name)
    if x.dim() != 4 or x.shape[1] != 3:
        hint = " (add the batch dimension: x[None])" if x.dim() == 3 and x.shape[0] == 3 else ""
        raise InputError(f"{what}: {name} has shape {tuple(x.shape)}; expected {_CONTRACT} (RGB, 3 channels)"
                         f"{hint}", cause="shape", argument=name)
    if x.shape[0] == 0:
        raise InputError(f"{what}: {name} is an empty batch (shape {tuple(x.shape)}); expected at least one image",
                         cause="shape", argument=name)
    h, w = x.shape[-2:]
    if min(h, w) < max(1, min_size or 0):
        raise InputSizeError(f"{what}: {name}: input {h}x{w} is smaller than the {min_size}x{min_size} pixels this "
                             f"backbone needs; crop or resize larger images", argument=name)
    return x


@contextlib.contextmanager
def generator_output() -> Iterator[None]:
    """Within this context, the first argument of :func:`check_image_pair` (a generator's output fed to a metric
    as a training loss) is checked for finiteness only, not for its range; see the module docstring."""
    token = _GENERATOR_OUTPUT.set(True)
    try:
        yield
    finally:
        _GENERATOR_OUTPUT.reset(token)


def check_image_values(tensors: Mapping[str, torch.Tensor], *, what: str = "metric",
                       tolerance: float | None = RANGE_TOLERANCE, finite_only: Collection[str] = ()) -> None:
    """Check that every tensor is finite and (unless ``tolerance`` is None or its name is in ``finite_only``)
    within ``[-tolerance, 1 + tolerance]``.

    One ``aminmax`` per tensor and one host synchronization for all of them.

    Raises:
        InputError: naming the tensor, its extremes (or its NaN/Inf count) and the likely scaling mistake.
    """
    if not tensors:
        return
    with torch.no_grad():
        extremes = torch.stack([e.float() for t in tensors.values() for e in torch.aminmax(t.detach())])
        values = extremes.cpu().tolist()
    for i, (name, t) in enumerate(tensors.items()):
        lo, hi = values[2 * i], values[2 * i + 1]
        if not (math.isfinite(lo) and math.isfinite(hi)):
            with torch.no_grad():
                n_nan = int(torch.isnan(t.detach()).sum())
                n_inf = int(torch.isinf(t.detach()).sum())
            found = ", ".join(s for s in (f"{n_nan} NaN" if n_nan else "", f"{n_inf} Inf" if n_inf else "") if s)
            raise InputError(f"{what}: {name} holds non-finite values ({found} of {t.numel()} in a {_describe(t)}); "
                             f"expected finite values in [0, 1]", cause="non-finite", argument=name)
        if tolerance is not None and name not in finite_only and (lo < -tolerance or hi > 1.0 + tolerance):
            if hi > 2.0 and lo >= -tolerance:
                hint = "; it looks scaled to [0, 255]: divide by 255"
            elif lo < -tolerance and hi <= 1.0 + tolerance:
                hint = "; it looks scaled to [-1, 1]: use (x + 1) / 2"
            else:
                hint = ""
            raise InputError(f"{what}: {name} has values in [{lo:.4g}, {hi:.4g}]; expected [0, 1] (accepted within "
                             f"[{-tolerance:g}, {1 + tolerance:g}] for generator overshoot){hint}",
                             cause="range", argument=name)


def module_device(module: torch.nn.Module) -> torch.device | None:
    """Device of a module's first parameter or buffer (None for a module without tensors)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return None


def check_image_pair(x: object, y: object, *, names: tuple[str, str] = ("distorted", "reference"),
                     what: str = "metric", min_size: int | None = None, device: torch.device | None = None,
                     tolerance: float | None = RANGE_TOLERANCE) -> tuple[torch.Tensor, torch.Tensor]:
    """The full contract of a full-reference call ``metric(x, y)``; returns ``(x, y)`` unchanged.

    Inside :func:`generator_output`, ``x`` is only checked to be finite, not for its range.

    Raises:
        InputError: see the module docstring; the message names the argument, what it is and what is expected.
        InputSizeError: an image side below ``min_size``.
    """
    tx = check_image_batch(x, name=names[0], what=what, min_size=min_size)
    ty = check_image_batch(y, name=names[1], what=what, min_size=min_size)
    if tx.shape != ty.shape:
        raise InputError(f"{what}: {names[0]} and {names[1]} shapes differ: {tuple(tx.shape)} vs {tuple(ty.shape)}; "
                         f"expected two batches of the same shape", cause="shape", argument=names[1])
    if device is not None:
        for name, t in zip(names, (tx, ty)):
            if t.device != device and not (t.device.type == device.type and device.index is None):
                raise InputError(f"{what}: {name} is on {t.device}, the metric on {device}; move it with "
                                 f".to({str(device)!r})", cause="device", argument=name)
    check_image_values({names[0]: tx, names[1]: ty}, what=what, tolerance=tolerance,
                       finite_only=names[:1] if _GENERATOR_OUTPUT.get() else ())
    return tx, ty
