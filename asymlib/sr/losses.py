"""The generator objective (paper Eq. 1) and the relativistic average GAN losses (ESRGAN; Eq. 4-6) on raw
discriminator logits.

With ``d`` the discriminator logit, ``D(a, b) = sigmoid(d(a) - E[d(b)])`` (Eq. 6), and
``BCE(z, t)`` the binary cross-entropy of logit ``z`` against target ``t`` (computed with
``binary_cross_entropy_with_logits``, i.e. the log-sum-exp form, never ``log(sigmoid(.))``):

* generator (Eq. 4):      ``0.5 * [BCE(d(r) - E d(f), 0) + BCE(d(f) - E d(r), 1)]``
* discriminator (Eq. 5):  ``0.5 * [BCE(d(r) - E d(f), 1) + BCE(d(f) - E d(r), 0)]``

The factor 0.5 follows BasicSR's ESRGAN model (Eq. 4-5 as printed have none); scale ``lambda_3``
accordingly when comparing loss weights with the paper.

Logit shapes: ``(B, 1)`` / ``(B,)`` for a vanilla (global) discriminator or ``(B, 1, h, w)`` for a
patch discriminator. The relativistic mean ``E d(.)`` is by default (``mean_over="all"``,
:data:`DEFAULT_MEAN_OVER`) taken over **all elements, batch and map positions**, as BasicSR's ESRGAN
model computes it (``torch.mean(fake_pred)``, a scalar); the paper follows that lineage, so its numbers
assume this mean. ``mean_over="batch"`` is the per-position alternative: each patch logit is compared
with the mini-batch average of the other kind at the same map position (Eq. 6 with every position seen
as its own discriminator). For global logits (one per image) both are the same mini-batch mean. The
BCE terms are then averaged over all elements (batch and map).

Gradient routing for the discriminator follows BasicSR: the real term gets no gradient through
``E d(f)`` and the fake term none through ``E d(r)``. The split form
(:func:`relativistic_discriminator_loss_real` / ``_fake``) allows two separate backward passes
(real batch, then fake batch) as needed for BatchNorm discriminators under DDP; the sum of the two
parts equals :func:`relativistic_discriminator_loss` in value and in gradient.

:func:`generator_loss` assembles the whole generator objective of Eq. 1 (L1 + perceptual metric + the
relativistic term); the SR trainer, the SR benchmark step and the autoencoder of Fig. 16 all call it.
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..errors import ConfigError, InputSizeError, UnknownNameError
from ..inputcheck import generator_output

__all__ = [
    "ADVERSARIAL_LOSSES",
    "DEFAULT_MEAN_OVER",
    "MEAN_OVER_CHOICES",
    "generator_loss",
    "get_adversarial_loss",
    "relativistic_discriminator_loss",
    "relativistic_discriminator_loss_fake",
    "relativistic_discriminator_loss_real",
    "relativistic_generator_loss",
    "relativistic_mean",
]

MeanOver = Literal["all", "batch"]
MEAN_OVER_CHOICES: tuple[str, ...] = ("all", "batch")
DEFAULT_MEAN_OVER: MeanOver = "all"  # BasicSR's torch.mean(pred): what the paper's numbers assume


def relativistic_mean(logits: torch.Tensor, mean_over: MeanOver = DEFAULT_MEAN_OVER) -> torch.Tensor:
    """``E[d(.)]`` of ``logits`` ``(B, ...)``, broadcastable against them.

    ``"all"`` (default, BasicSR): the mean of every element, a 0-d tensor. ``"batch"``: the per-position
    mini-batch mean, ``(1, ...)``. With one logit per image (``(B,)``, ``(B, 1)``) both are the same mean and
    are computed the same way (over dim 0), so the two options give bit-identical results there.
    """
    if mean_over not in MEAN_OVER_CHOICES:
        raise ConfigError(f"mean_over must be one of {list(MEAN_OVER_CHOICES)}, got {mean_over!r}")
    if logits.dim() == 0:
        raise InputSizeError("relativistic_mean needs logits with a batch dimension, got a 0-d tensor")
    if mean_over == "batch" or logits[0].numel() == 1:
        return logits.mean(dim=0, keepdim=True)
    return logits.mean()


def _check_pair(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> None:
    if real_logits.shape[1:] != fake_logits.shape[1:] or real_logits.dim() == 0:
        raise InputSizeError(
            f"real and fake logits must share their per-sample shape, got {tuple(real_logits.shape)} "
            f"and {tuple(fake_logits.shape)}"
        )


def _bce(logits: torch.Tensor, target: float) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


def relativistic_generator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mean_over: MeanOver = DEFAULT_MEAN_OVER
) -> torch.Tensor:
    """Generator loss (Eq. 4), a scalar. Gradients flow into ``fake_logits`` through both terms.

    ``real_logits`` may (and, for memory, should) be detached: only the generator is updated.
    """
    _check_pair(real_logits, fake_logits)
    real_rel = real_logits - relativistic_mean(fake_logits, mean_over)
    fake_rel = fake_logits - relativistic_mean(real_logits, mean_over)
    return 0.5 * (_bce(real_rel, 0.0) + _bce(fake_rel, 1.0))


def relativistic_discriminator_loss_real(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mean_over: MeanOver = DEFAULT_MEAN_OVER
) -> torch.Tensor:
    """Real half of Eq. 5: ``0.5 * BCE(d(r) - E d(f).detach(), 1)``; backward through ``real_logits`` only."""
    _check_pair(real_logits, fake_logits)
    return 0.5 * _bce(real_logits - relativistic_mean(fake_logits.detach(), mean_over), 1.0)


def relativistic_discriminator_loss_fake(
    fake_logits: torch.Tensor, real_logits: torch.Tensor, mean_over: MeanOver = DEFAULT_MEAN_OVER
) -> torch.Tensor:
    """Fake half of Eq. 5: ``0.5 * BCE(d(f) - E d(r).detach(), 0)``; backward through ``fake_logits`` only.

    ``fake_logits`` must come from the *detached* generator output so that no gradient reaches
    the generator.
    """
    _check_pair(real_logits, fake_logits)
    return 0.5 * _bce(fake_logits - relativistic_mean(real_logits.detach(), mean_over), 0.0)


def relativistic_discriminator_loss(
    real_logits: torch.Tensor, fake_logits: torch.Tensor, mean_over: MeanOver = DEFAULT_MEAN_OVER
) -> torch.Tensor:
    """Discriminator loss (Eq. 5), a scalar: sum of the real and fake halves (one backward pass)."""
    return relativistic_discriminator_loss_real(real_logits, fake_logits, mean_over) + (
        relativistic_discriminator_loss_fake(fake_logits, real_logits, mean_over)
    )


def generator_loss(
    sr: torch.Tensor,
    hr: torch.Tensor,
    *,
    lambda_rec: float,
    lambda_per: float,
    lambda_adv: float,
    metric: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    discriminator: Callable[[torch.Tensor], torch.Tensor] | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    mean_over: MeanOver = DEFAULT_MEAN_OVER,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The generator objective of Eq. 1 on one batch::

        lambda_rec * L1(sr, hr) + lambda_per * mean(metric(sr, hr)) + lambda_adv * l_adv(sr, hr)

    with ``l_adv`` :func:`relativistic_generator_loss` of the discriminator's logits of ``hr`` (detached)
    and ``sr``. A term whose weight is 0 is skipped entirely (no metric or discriminator forward pass).

    Args:
        sr: ``(B, 3, H, W)`` generator output, in the autocast dtype or float32, with its autograd graph.
        hr: ``(B, 3, H, W)`` float32 target in ``[0, 1]``.
        lambda_rec, lambda_per, lambda_adv: weights ``>= 0`` of the L1, perceptual and adversarial terms.
        metric: frozen distance ``metric(sr, hr) -> (B,)`` (0 = identical); needed when ``lambda_per > 0``.
        discriminator: ``d(images) -> logits`` of shape ``(B, 1)``, ``(B,)`` or ``(B, 1, h, w)``, its
            parameters frozen by the caller; needed when ``lambda_adv > 0``.
        autocast: context factory the metric and discriminator forward passes run under (e.g. bf16
            autocast on CUDA); the L1 term and the weighted sum are computed in float32 outside it.
        mean_over: the relativistic mean of the adversarial term (:func:`relativistic_mean`; default BasicSR's
            mean over all elements).

    Returns:
        ``(total, terms)``: the 0-d float32 objective and the unweighted terms with the names the trainer logs:
        ``l_rec`` (when ``lambda_rec > 0``), ``l_per`` (``lambda_per > 0``), ``l_g_adv`` (``lambda_adv > 0``)
        and ``l_total`` (= ``total``), each a 0-d float32 tensor still attached to the graph.

    Raises:
        ConfigError: a weighted perceptual or adversarial term without its metric or discriminator.
        InputError: (from the metric) ``hr`` outside the metric input contract, or a NaN/Inf in ``sr``; ``sr``'s
            range is not checked (:func:`asymlib.inputcheck.generator_output`).
    """
    if lambda_per > 0 and metric is None:
        raise ConfigError(f"lambda_per={lambda_per} but no perceptual metric was given")
    if lambda_adv > 0 and discriminator is None:
        raise ConfigError(f"lambda_adv={lambda_adv} but no discriminator was given")
    sr32 = sr.float()
    terms: dict[str, torch.Tensor] = {}
    total = sr32.new_zeros(())
    if lambda_rec > 0:
        terms["l_rec"] = F.l1_loss(sr32, hr)
        total = total + lambda_rec * terms["l_rec"]
    if lambda_per > 0:
        with autocast(), generator_output():  # sr may leave [0, 1] (see asymlib.inputcheck); NaN/Inf still raise
            terms["l_per"] = metric(sr, hr).float().mean()  # type: ignore[misc]
        total = total + lambda_per * terms["l_per"]
    if lambda_adv > 0:
        with autocast():
            real_ref = discriminator(hr).detach()  # type: ignore[misc]
            fake_g = discriminator(sr)  # type: ignore[misc]
        terms["l_g_adv"] = relativistic_generator_loss(real_ref.float(), fake_g.float(), mean_over)
        total = total + lambda_adv * terms["l_g_adv"]
    terms["l_total"] = total
    return total, terms


# name -> (generator loss, discriminator loss)
ADVERSARIAL_LOSSES: dict[str, tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]] = {
    "relativistic_average": (relativistic_generator_loss, relativistic_discriminator_loss),
}


def get_adversarial_loss(
    name: str = "relativistic_average",
) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
    """``(generator_loss, discriminator_loss)`` pair, each ``f(real_logits, fake_logits) -> scalar``."""
    if name not in ADVERSARIAL_LOSSES:
        raise UnknownNameError(f"unknown adversarial loss {name!r}; available: {sorted(ADVERSARIAL_LOSSES)}")
    return ADVERSARIAL_LOSSES[name]
