"""The pilot profile: the paper's study at schedules that fit about one GPU-day, for a same-day answer.

Everything but the schedules is the paper profile's: KADID-10K/TID2013/Liu13/Ma17/TQD/KonIQ-10k/DIV2K, ImageNet
backbones, the six metrics, SwinIR classical x4 at batch 32 and 256-px crops, the paper's loss weights, every
setting, discriminator, initialization, evaluator, table and figure. What shrinks:

- stage 1 (L1): 100K -> 10K iterations; stage 2: 400K -> 7K iterations; learning-rate milestones at the same
  fractions of the run (SwinIR's 50/80/90/95 % and the paper's 150K/300K/350K/375K of 400K);
- the Fig. 7 stability sweep: 3 seeds -> 1 (the six adversarial weights stay);
- NR-IQA fine-tuning (Table 2): 6000 -> 2000 steps, validation every 250; the Fig. 12-16 analyses: a quarter
  of their steps.

``python -m asymlib.runs plan --profile pilot`` estimates its GPU-hours from the step-cost table in force
(measured rows from ``python -m asymlib.bench --write-step-costs`` where present, else the labelled default
assumptions of :mod:`asymlib.pipeline.costs`, which put one paper-size stage-2 step at about 0.14-0.21 s on an
H100-class GPU): about 24 GPU-hours with the defaults. Its numbers are noisier than the paper's and labelled
``ours (pilot)``.
"""
from __future__ import annotations

from .paper import PROFILE as _PAPER

_STAGE1_IT, _STAGE2_IT = 10_000, 7_000


def _scaled(milestones: tuple[int, ...], old: int, new: int) -> list[int]:
    return [round(m * new / old) for m in milestones]


PROFILE = _PAPER.replace(**{
    "name": "pilot",
    "description": "Pilot: the paper's data, backbones, evaluators and settings at about one GPU-day of schedules "
                   "(stage 1 10K it., stage 2 7K it., one seed in the stability sweep). Noisier than the paper.",
    "sr.stage1.iterations": _STAGE1_IT,
    "sr.stage1.milestones": _scaled(_PAPER.sr.stage1.milestones, _PAPER.sr.stage1.iterations, _STAGE1_IT),
    "sr.stage1.checkpoint_every": 1000,
    "sr.stage1.sample_every": 1000,
    "sr.stage2.iterations": _STAGE2_IT,
    "sr.stage2.milestones": _scaled(_PAPER.sr.stage2.milestones, _PAPER.sr.stage2.iterations, _STAGE2_IT),
    "sr.stage2.checkpoint_every": 1000,
    "sr.stage2.sample_every": 1000,
    "discriminators.seeds": 1,
    "gan_init.nr_train.iterations": 2000,
    "gan_init.nr_train.lr_halve_every": 700,
    "figures.recovery_steps": 250,
    "figures.texture_steps": 250,
    "figures.ae_steps": 1250,
})
