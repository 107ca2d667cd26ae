"""The paper profile: the paper's datasets, schedules and settings (Sec. 3.1, Appendix B-D).

Every field keeps the paper's value as its dataclass default (see :mod:`asymlib.config` and
:mod:`asymlib.sr.config`): alpha/beta on KADID-10K (5000 it., batch 32, Adam 1e-4 halved every 1000),
evaluation on TID2013/Liu13/Ma17/TQD; SwinIR classical x4, stage 1 L1 100K it., stage 2 400K it. at
lambda = (1e-2, 1, 5e-3); MANIQA/LIQE/DeQA/VQ-R1 rescaled on KonIQ-10k; ImageNet backbones.
"""
from __future__ import annotations

from ..config import Profile

PROFILE = Profile(
    name="paper",
    weights="imagenet",
    description="Paper settings: KADID-10K training (5000 it., batch 32, Adam 1e-4 halved every 1000), "
                "TID2013/Liu13/Ma17/TQD evaluation, ImageNet backbones.",
)
