"""Start a SwinIR generator as nearest-neighbour upsampling.

With its default initialization a classical SwinIR needs thousands of iterations before its output even has
the input's colours. A short schedule (the smoke profile's stage 1) cannot get there, so the untrained model
would score far below any interpolation and a broken data path would go unnoticed. Initialized here, the
untrained generator reproduces nearest-neighbour upsampling exactly, and every layer still trains:

- ``conv_first`` copies the image (minus SwinIR's mean) into channels 0-2 and its negative into 3-5;
- ``conv_after_body`` starts at zero, so the transformer body adds nothing until it has learnt something
  (its weights get gradients from the first step);
- ``conv_before_upsample`` passes channels 0-5 on; after its LeakyReLU (slope ``s``) the difference of a
  channel and its negative copy is ``(1 + s) x`` for either sign of ``x``, so nothing is lost;
- each ``Upsample`` convolution copies channels 0-5 to the four sub-pixel positions of the pixel shuffle;
- ``conv_last`` outputs channel ``c`` minus channel ``3 + c``, divided by ``1 + s``.

Channels beyond 5 keep SwinIR's initialization and feed nothing at first; ``conv_last`` reads them as soon as
its weights move. Only the classical ``"pixelshuffle"`` upsampler at scales 2, 4 and 8 has this layout.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from ..errors import ConfigError

__all__ = ["init_nearest_upsampler"]

_COPIES = 6  # channels carrying the image: x (0-2) and -x (3-5)


def _identity_rows(conv: nn.Conv2d, pairs: list[tuple[int, int, float]]) -> None:
    """Output channel ``o`` of ``conv`` becomes ``sign * input channel i`` (centre tap), without bias."""
    centre = conv.kernel_size[0] // 2
    for o, _, _ in pairs:
        conv.weight[o].zero_()
        if conv.bias is not None:
            conv.bias[o] = 0.0
    for o, i, sign in pairs:
        conv.weight[o, i, centre, centre] = sign


@torch.no_grad()
def init_nearest_upsampler(model: nn.Module) -> nn.Module:
    """Set ``model`` (a classical SwinIR, see the module docstring) to compute nearest-neighbour upsampling.

    Returns the same module, which maps a ``(B, 3, h, w)`` image in [0, 1] to its ``(B, 3, s*h, s*w)``
    nearest-neighbour enlargement (up to float rounding) until it is trained.

    Raises:
        ConfigError: the model is not a SwinIR with the ``"pixelshuffle"`` upsampler at a power-of-two scale,
            or has too few channels.
    """
    upsampler = getattr(model, "upsampler", None)
    scale = int(getattr(model, "upscale", getattr(model, "scale", 0)) or 0)
    if upsampler != "pixelshuffle" or scale < 2 or scale & (scale - 1):
        raise ConfigError(f"nearest initialization needs SwinIR's 'pixelshuffle' upsampler at scale 2, 4 or 8; "
                          f"this model has upsampler {upsampler!r} at scale {scale}")
    if not isinstance(getattr(model, "conv_after_body", None), nn.Conv2d):
        raise ConfigError("nearest initialization needs SwinIR's '1conv' residual connection (conv_after_body is "
                          "one convolution)")
    before = model.conv_before_upsample
    conv_before, act = before[0], before[1]
    if min(model.conv_first.out_channels, conv_before.out_channels) < _COPIES:
        raise ConfigError(f"nearest initialization needs at least {_COPIES} feature channels")
    slope = float(getattr(act, "negative_slope", 0.0))

    _identity_rows(model.conv_first, [(c, c, 1.0) for c in range(3)] + [(3 + c, c, -1.0) for c in range(3)])
    model.conv_after_body.weight.zero_()
    model.conv_after_body.bias.zero_()
    _identity_rows(conv_before, [(c, c, 1.0) for c in range(_COPIES)])
    convs = [m for m in model.upsample if isinstance(m, nn.Conv2d)]
    if len(convs) != int(math.log2(scale)):
        raise ConfigError(f"expected {int(math.log2(scale))} upsampling convolutions at scale {scale}, "
                          f"found {len(convs)}")
    for conv in convs:  # pixel shuffle x2: output channel c takes input channels 4c .. 4c+3
        _identity_rows(conv, [(4 * c + k, c, 1.0) for c in range(_COPIES) for k in range(4)])
    last = model.conv_last
    last.weight.zero_()
    centre = last.kernel_size[0] // 2
    for c in range(3):
        last.weight[c, c, centre, centre] = 1.0 / (1.0 + slope)
        last.weight[c, 3 + c, centre, centre] = -1.0 / (1.0 + slope)
    last.bias.zero_()
    return model
