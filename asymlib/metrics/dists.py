"""DISTS-style full-reference metric over any backbone (paper Eq. 2-3).

For stage ``i`` (stage 0 = the raw ``[0, 1]`` RGB input, then the backbone's feature maps) and channel ``j``:

    l_ij = (2 mu_x mu_y + c1) / (mu_x^2 + mu_y^2 + c1)          (texture: global means)
    s_ij = (2 cov_xy + c2) / (var_x + var_y + c2)                (structure: cov = E[xy] - mu_x mu_y)
    D(x, y) = 1 - sum_ij (alpha_ij l_ij + beta_ij s_ij) / (sum alpha + sum beta)

with c1 = c2 = 1e-6. ``D`` is 0 for identical images, symmetric in its arguments, differentiable, and lower
means more similar. Argument order follows pyiqa: ``metric(distorted, reference)``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..backbones import FeatureExtractor
from ..inputcheck import RANGE_TOLERANCE, check_image_pair

__all__ = ["DISTSMetric", "ALPHA_BETA_INIT", "channel_moments"]

ALPHA_BETA_INIT = (0.1, 0.01)  # N(mean, std), as DISTS initializes alpha and beta
STAGE0_BOUNDS = (0.02, 1.0)  # projection of stage-0 weights after each update (paper Appendix B)


# Second moments are formed a few samples at a time in scratch memory that every slice and every stage of one
# metric call reuses: the products never exist as full-size temporaries, and freshly mapped memory (expensive
# to touch: page faults) is paid for once per call. A slice holds at most this many bytes per map (at least
# one sample); on CPU small slices stay in cache between the subtraction, the products and the sums (8 MB:
# -25% against 32 MB for VGG-16 at 256x256, batch 8).
_CPU_SLICE_BYTES = 8 << 20
_ACCEL_SLICE_BYTES = 256 << 20


def _acc_dtype(t: torch.Tensor) -> torch.dtype:
    """float32 for half/bfloat16/float32 maps, float64 for float64 ones."""
    return torch.promote_types(t.dtype, torch.float32)


def _slice_samples(f: torch.Tensor, dtype: torch.dtype) -> int:
    """Samples per slice of the second-moment computation of map ``f``."""
    budget = _CPU_SLICE_BYTES if f.device.type == "cpu" else _ACCEL_SLICE_BYTES
    per_sample = max(1, f[0].numel() * dtype.itemsize)
    return max(1, min(f.shape[0], budget // per_sample))


def _slot_numel(f: torch.Tensor, dtype: torch.dtype) -> int:
    """Scratch elements one slice of map ``f`` needs: centered maps and products of both images."""
    return 4 * _slice_samples(f, dtype) * f[0].numel()


def _prefers_channels_last(f: torch.Tensor) -> bool:
    return f.dim() == 4 and f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous()


class _Workspace:
    """Scratch memory of the centered products, shared by the stages of one metric call (forward only)."""

    def __init__(self) -> None:
        self._flat: torch.Tensor | None = None

    def reserve(self, feats: Sequence[torch.Tensor]) -> None:
        """Allocate once, for the stage of ``feats`` that needs the most scratch memory."""
        f = max(feats, key=lambda t: _slot_numel(t, _acc_dtype(t)))
        self._buffer(f, _acc_dtype(f), _slot_numel(f, _acc_dtype(f)))

    def _buffer(self, f: torch.Tensor, dtype: torch.dtype, numel: int) -> torch.Tensor:
        flat = self._flat
        if flat is None or flat.numel() < numel or flat.dtype != dtype or flat.device != f.device:
            flat = self._flat = torch.empty(numel, dtype=dtype, device=f.device)
        return flat[:numel]

    def slots(self, f: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Two ``(2, m, C, H, W)`` views (centered maps, their products) in ``f``'s memory format, and the
        slice length ``m``."""
        _, c, h, w = f.shape
        m = _slice_samples(f, dtype)
        flat = self._buffer(f, dtype, _slot_numel(f, dtype))
        if _prefers_channels_last(f):
            views = flat.view(2, 2, m, h, w, c).permute(0, 1, 2, 5, 3, 4)
        else:
            views = flat.view(2, 2, m, c, h, w)
        return views[0], views[1], m


def _centered_second_moments(fx: torch.Tensor, mx: torch.Tensor, fy: torch.Tensor, my: torch.Tensor,
                             workspace: _Workspace) -> torch.Tensor:
    """``sum_hw`` of ``(x - mx)^2``, ``(y - my)^2`` and ``(x - mx)(y - my)``: ``(3, B, C)``, accumulation dtype.

    Centering before the products keeps float32 variances exact where ``E[x^2] - E[x]^2`` would cancel
    (feature maps whose mean is large against their spread). Per slice of samples: two subtractions, one
    product of both centered maps with themselves, one in-place cross product and two cascade sums.
    """
    dtype = torch.promote_types(_acc_dtype(fx), _acc_dtype(fy))
    b = fx.shape[0]
    centered, prods, step = workspace.slots(fx, dtype)
    out = torch.empty(3, b, fx.shape[1], dtype=dtype, device=fx.device)
    mx, my = mx[..., None, None], my[..., None, None]
    for i in range(0, b, step):
        j = min(b, i + step)
        c, p = centered[:, : j - i], prods[:, : j - i]
        torch.sub(fx[i:j], mx[i:j], out=c[0])
        torch.sub(fy[i:j], my[i:j], out=c[1])
        torch.sum(torch.mul(c, c, out=p), dim=(3, 4), out=out[:2, i:j])
        torch.sum(c[0].mul_(c[1]), dim=(2, 3), out=out[2, i:j])
    return out


class _ChannelMoments(torch.autograd.Function):
    """Per-channel means, variances and covariance of two ``(B, C, H, W)`` maps; one fused backward."""

    @staticmethod
    def forward(ctx: Any, fx: torch.Tensor, fy: torch.Tensor, workspace: _Workspace | None
                ) -> tuple[torch.Tensor, ...]:
        n = fx.shape[-1] * fx.shape[-2]
        with torch.autocast(fx.device.type, enabled=False):
            mx = fx.sum(dim=(2, 3), dtype=_acc_dtype(fx)).div_(n)
            my = fy.sum(dim=(2, 3), dtype=_acc_dtype(fy)).div_(n)
            second = _centered_second_moments(fx, mx, fy, my, workspace or _Workspace()).div_(n)
        ctx.save_for_backward(fx, fy, mx, my)
        vx, vy, cov = (t.clone() for t in second)  # (B, C) each: separate outputs, not views of one another
        return mx, my, vx, vy, cov

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx: Any, g_mx: torch.Tensor, g_my: torch.Tensor, g_vx: torch.Tensor, g_vy: torch.Tensor,
                 g_cov: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None, None]:
        fx, fy, mx, my = ctx.saved_tensors
        n = fx.shape[-1] * fx.shape[-2]

        def grad(f: torch.Tensor, mf: torch.Tensor, other: torch.Tensor, mo: torch.Tensor, g_m: torch.Tensor,
                 g_v: torch.Tensor) -> torch.Tensor:
            # d mean/df = 1/n, d var/df = 2 (f - mf)/n, d cov/df = (other - mo)/n: the terms through the
            # means of var and cov vanish because centered values sum to zero.
            const = (g_m - 2.0 * g_v * mf - g_cov * mo) / n
            out = torch.addcmul(const[..., None, None], f, (2.0 / n * g_v)[..., None, None])
            out.addcmul_(other, (g_cov / n)[..., None, None])
            return out.to(f.dtype)

        gx = grad(fx, mx, fy, my, g_mx, g_vx) if ctx.needs_input_grad[0] else None
        gy = grad(fy, my, fx, mx, g_my, g_vy) if ctx.needs_input_grad[1] else None
        return gx, gy, None


def channel_moments(fx: torch.Tensor, fy: torch.Tensor, workspace: _Workspace | None = None
                    ) -> tuple[torch.Tensor, ...]:
    """``E[x], E[y], Var[x], Var[y], Cov[x, y]`` over the spatial dims of two ``(B, C, H, W)`` maps.

    Sums accumulate in float32 (float64 for float64 maps; any memory format) and the second moments are
    centered, so they agree with the textbook two-pass formulas to float32 rounding; each result is
    ``(B, C)``. Differentiable in both maps; the backward pass writes each input gradient once, as
    ``(dE[x] + 2 dVar[x] (x - E[x]) + dCov (y - E[y])) / (H W)``.
    """
    return _ChannelMoments.apply(fx, fy, workspace)


class DISTSMetric(nn.Module):
    """DISTS-style metric: frozen backbone + per-channel texture/structure weights.

    Args:
        backbone: a frozen :class:`~asymlib.backbones.FeatureExtractor`.
        seed: seed of the ``alpha``/``beta`` initialization ``N(0.1, 0.01)``.
        trainable_weights: False fixes ``alpha``/``beta`` (the paper's VGG-16-R keeps its random ones).
        c1, c2: stabilizing constants.

    Shapes: ``forward(x, y)`` with ``x, y`` of shape ``(B, 3, H, W)`` in ``[0, 1]`` returns ``(B,)``
    distances in about ``[0, 1]``.

    Input contract (:meth:`check_inputs`, once per call on the whole batch): ``x`` and ``y`` are floating-point
    tensors of the same shape ``(B, 3, H, W)``, ``B >= 1``, ``H, W >= min_size``, on the metric's device, finite,
    with values in ``[0, 1]`` up to ``input_tolerance`` (default 0.5: ``[-0.5, 1.5]`` is accepted, so that a
    generator's slight overshoot can be trained against, while ``[0, 255]``- or ``[-1, 1]``-scaled images are
    refused; None accepts any finite value; as a training loss inside
    :func:`~asymlib.inputcheck.generator_output`, ``x`` is only checked to be finite; see
    :mod:`asymlib.inputcheck`). Anything else raises
    :class:`~asymlib.errors.InputError` saying what was given. Inputs of another floating dtype (float64,
    float16) are computed in the metric's dtype and the distances returned in the inputs' dtype; under autocast
    they are left to autocast.
    """

    lower_better = True  # a distance: 0 for identical images
    score_range = (0.0, 1.0)
    validates_inputs = True  # MetricLoss and other wrappers need not check again
    input_tolerance: float | None = RANGE_TOLERANCE

    def __init__(self, backbone: FeatureExtractor, seed: int = 0, trainable_weights: bool = True,
                 c1: float = 1e-6, c2: float = 1e-6):
        super().__init__()
        self.backbone = backbone
        self.backbone.requires_grad_(False)
        self.chns: list[int] = [3] + list(backbone.channels)
        self.c1, self.c2 = c1, c2
        gen = torch.Generator().manual_seed(seed)
        mean, std = ALPHA_BETA_INIT
        total = sum(self.chns)
        self.alpha = nn.Parameter(torch.randn(1, total, 1, 1, generator=gen) * std + mean,
                                  requires_grad=trainable_weights)
        self.beta = nn.Parameter(torch.randn(1, total, 1, 1, generator=gen) * std + mean,
                                 requires_grad=trainable_weights)
        self.seed = seed
        if self._channels_last():
            # Convolutions run on NHWC maps; weights in the same format are not converted on every call.
            self.backbone.to(memory_format=torch.channels_last)

    # The backbone is a fixed feature transform: keep it in eval mode whatever the metric's mode.
    def train(self, mode: bool = True) -> "DISTSMetric":
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def min_size(self) -> int:
        return self.backbone.min_size

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage list ``[x, f_1(x), ..., f_m(x)]``; stage 0 is the raw input.

        Convolutional backbones run in channels-last memory format (the maps come back with NHWC strides,
        still indexed as ``(B, C, H, W)``).
        """
        h = x.contiguous(memory_format=torch.channels_last) if self._channels_last() else x
        return [x] + self.backbone(h)

    def _channels_last(self) -> bool:
        spec = getattr(self.backbone, "spec", None)
        return getattr(spec, "kind", None) == "vgg_l2pool"

    def _needs_graph(self, x: torch.Tensor) -> bool:
        """Whether the features of ``x`` must be recorded for autograd (input or backbone needs gradients)."""
        if not torch.is_grad_enabled():
            return False
        return x.requires_grad or any(p.requires_grad for p in self.backbone.parameters())

    def similarity_terms(self, feats_x: list[torch.Tensor], feats_y: list[torch.Tensor]
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """Texture ``l`` and structure ``s`` terms of all stages, each ``(B, sum C_i)``, in float32.

        They do not depend on ``alpha``/``beta``: training the weights of a frozen backbone can compute
        them once per image pair (see :mod:`asymlib.iqa.train`). Means, variances and covariances come from
        float32 sums per stage (:func:`channel_moments`), second moments centered on the means
        (``cov = E[(x - E[x])(y - E[y])]``, which equals the paper's ``E[xy] - E[x]E[y]``).
        """
        ls, ss = [], []
        workspace = _Workspace()  # one scratch buffer for every stage, sized by the largest slice
        workspace.reserve(feats_x)
        for fx, fy in zip(feats_x, feats_y):
            mx, my, vx, vy, cov = channel_moments(fx, fy, workspace)
            ls.append((2 * mx * my + self.c1) / (mx * mx + my * my + self.c1))
            ss.append((2 * cov + self.c2) / (vx + vy + self.c2))
        return torch.cat(ls, dim=1), torch.cat(ss, dim=1)

    def check_inputs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Check the input contract (see the class docstring) and return ``(x, y)`` in the metric's dtype.

        One ``aminmax`` per image batch and one host synchronization per call. Outside autocast, inputs of
        another floating dtype are cast to the metric's (differentiably); under autocast they are returned as
        they are.

        Raises:
            InputError: naming the argument (``distorted``/``reference``), what it is and what is expected.
            InputSizeError: an image side below :attr:`min_size`.
        """
        device = self.alpha.device
        x, y = check_image_pair(x, y, what=f"DISTS metric over {self.backbone.name!r}", min_size=self.min_size,
                                device=device, tolerance=self.input_tolerance)
        if torch.is_autocast_enabled(device.type):
            return x, y
        dtype = next(self.backbone.parameters(), self.alpha).dtype
        return x.to(dtype), y.to(dtype)

    def pair_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(l, s)`` terms ``(B, sum C_i)`` of image pairs, after :meth:`check_inputs`.

        Each image goes through the backbone once; an image that needs no gradient (typically the
        reference of a loss) is processed without recording an autograd graph.
        """
        return self._pair_terms(*self.check_inputs(x, y))

    def _pair_terms(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = []
        for img in (x, y):
            with torch.set_grad_enabled(self._needs_graph(img)):
                feats.append(self.features(img))
        return self.similarity_terms(*feats)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        xc, yc = self.check_inputs(x, y)
        d = self.distance_from_terms(*self._pair_terms(xc, yc))
        if xc is not x or yc is not y:  # computed in the metric's dtype: answer in the inputs' dtype
            d = d.to(torch.promote_types(x.dtype, y.dtype))
        return d

    def distance_from_terms(self, l_terms: torch.Tensor, s_terms: torch.Tensor) -> torch.Tensor:
        """``1 - sum(alpha l + beta s) / (sum alpha + sum beta)`` from ``(B, sum C_i)`` terms -> ``(B,)``."""
        w_sum = self.alpha.sum() + self.beta.sum()
        a = (self.alpha / w_sum).flatten().float()
        b = (self.beta / w_sum).flatten().float()
        return 1.0 - (l_terms * a).sum(1) - (s_terms * b).sum(1)

    @torch.no_grad()
    def project_weights_(self, stage0_bounds: tuple[float, float] = STAGE0_BOUNDS) -> None:
        """Projection applied after each optimizer step: weights >= 0, stage-0 weights in ``stage0_bounds``."""
        for w in (self.alpha, self.beta):
            w.clamp_(min=0.0)
            w[:, : self.chns[0]].clamp_(*stage0_bounds)

    def weights_state(self) -> dict[str, Any]:
        return {"alpha": self.alpha.detach().cpu().clone(), "beta": self.beta.detach().cpu().clone(),
                "chns": list(self.chns), "backbone": self.backbone.name}

    def load_weights_state(self, state: dict[str, Any], source: str = "state") -> None:
        from ..errors import CheckpointError

        for key in ("alpha", "beta"):
            if key not in state:
                raise CheckpointError(f"{source}: no {key!r} in the metric weights")
            if tuple(state[key].shape) != tuple(self.alpha.shape):
                raise CheckpointError(
                    f"{source}: {key} has shape {tuple(state[key].shape)}, metric over {self.backbone.name!r} "
                    f"needs {tuple(self.alpha.shape)}"
                )
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
            self.beta.copy_(state["beta"])

    def load_weights_file(self, path: str | Path) -> None:
        """Load raw alpha/beta from a file: the official DISTS ``weights.pt`` / pyiqa layout (tensors ``alpha``,
        ``beta`` of shape ``(1, sum(chns), 1, 1)``), an asymlib ``.safetensors`` export or a ``metric_train``
        run's ``metric_weights.pt``. Raises :class:`~asymlib.errors.CheckpointError` naming the file."""
        from .weights_io import load_metric_weights

        load_metric_weights(self, path)
