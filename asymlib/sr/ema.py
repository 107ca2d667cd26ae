"""Exponential moving average of a model's weights (SwinIR/BasicSR use decay 0.999).

After ``n`` calls ``update(model)`` with model weights ``w_1..w_n`` and initial copy ``w_0``::

    ema_n = decay**n * w_0 + (1 - decay) * sum_k decay**(n - k) * w_k
"""
from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from ..errors import CheckpointError, ConfigError

__all__ = ["ModelEMA"]


def _unwrap(model: nn.Module) -> nn.Module:
    # DistributedDataParallel / DataParallel keep the real network in `.module`
    return model.module if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)) else model


class ModelEMA:
    """Averaged copy of a model for evaluation.

    Args:
        model: the trained network (a DDP/DataParallel wrapper is unwrapped).
        decay: averaging factor in [0, 1).
        average_buffers: also average floating-point buffers (e.g. BatchNorm running statistics,
            as timm's ModelEmaV2 does); if False they are copied. Integer buffers (counters,
            index tables) are always copied.
        device: where the averaged copy lives (default: alongside the model).

    Attributes:
        module: the averaged network, in eval mode with ``requires_grad`` off.
        updates: number of ``update`` calls so far.
    """

    def __init__(
        self,
        model: nn.Module,
        decay: float = 0.999,
        average_buffers: bool = True,
        device: torch.device | str | None = None,
    ) -> None:
        if not 0.0 <= decay < 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1), got {decay!r}")
        self.decay = float(decay)
        self.average_buffers = bool(average_buffers)
        self.updates = 0
        self.module = copy.deepcopy(_unwrap(model)).eval()
        if device is not None:
            self.module.to(device)
        for p in self.module.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Blend the current weights of ``model`` into the average: ``ema = d*ema + (1-d)*w``."""
        src = _unwrap(model)
        ema_params = list(self.module.parameters())
        src_params = list(src.parameters())
        if len(ema_params) != len(src_params):
            raise ConfigError("ModelEMA.update: the model's parameters do not match the averaged copy")
        weight = 1.0 - self.decay
        pairs = [(e, s.detach().to(e.device, e.dtype)) for e, s in zip(ema_params, src_params, strict=True)]
        if pairs:
            # one fused kernel per device for the ~hundreds of parameter tensors (as timm's ModelEmaV3)
            torch._foreach_lerp_([e for e, _ in pairs], [s for _, s in pairs], weight)
        for e, s in zip(self.module.buffers(), src.buffers(), strict=True):
            s = s.detach().to(e.device)
            if self.average_buffers and e.is_floating_point():
                e.lerp_(s.to(e.dtype), weight)
            else:
                e.copy_(s)
        self.updates += 1

    def state_dict(self) -> dict[str, Any]:
        """``{"module": averaged weights, "decay": float, "updates": int, "average_buffers": bool}``."""
        return {
            "module": self.module.state_dict(),
            "decay": self.decay,
            "updates": self.updates,
            "average_buffers": self.average_buffers,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` output (a bare module state dict is accepted too)."""
        if "module" in state and "decay" in state:
            module_state = state["module"]
            self.decay = float(state["decay"])
            self.updates = int(state.get("updates", 0))
            self.average_buffers = bool(state.get("average_buffers", self.average_buffers))
        else:
            module_state = state
        try:
            self.module.load_state_dict(module_state)
        except RuntimeError as exc:
            raise CheckpointError(f"EMA state does not match the model: {exc}") from exc
