"""When adversarial training counts as collapsed (the SR trainer's rule, shared by the Fig. 16 autoencoder).

A run collapses when a loss becomes non-finite (or the metric refuses a NaN/Inf generator output), or when
the discriminator explodes: its loss exceeds ``max_d_loss`` or one of its logits exceeds ``max_abs_logit`` in
magnitude for ``patience`` consecutive steps.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import InputError

__all__ = ["CollapseRule", "refused_output"]


def refused_output(exc: InputError) -> bool:
    """Whether a metric's input error means the generator output was NaN/Inf (a collapse, like a non-finite
    loss) rather than a bug to raise."""
    return exc.cause == "non-finite" and exc.argument == "distorted"


@dataclass(frozen=True)
class CollapseRule:
    """Thresholds of the discriminator-explosion test (see the module docstring)."""

    max_d_loss: float = 50.0
    max_abs_logit: float = 1e4
    patience: int = 20

    def exploding(self, d_loss: float, max_abs_logit: float) -> bool:
        """Whether one step's discriminator loss or largest ``|logit|`` is over its threshold."""
        return bool(d_loss > self.max_d_loss or max_abs_logit > self.max_abs_logit)

    def collapsed(self, bad_steps: int) -> bool:
        """Whether ``bad_steps`` consecutive exploding steps are enough to stop."""
        return bad_steps >= self.patience

    def reason(self, bad_steps: int, step: int) -> str:
        """The collapse reason recorded with the run."""
        return (f"discriminator exploded: loss > {self.max_d_loss} or |logit| > {self.max_abs_logit} for "
                f"{bad_steps} consecutive steps (step {step})")
