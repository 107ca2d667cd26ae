"""The study's profiles, one file each: :mod:`~asymlib.profiles.paper`, :mod:`~asymlib.profiles.pilot` (the paper at
about one GPU-day) and :mod:`~asymlib.profiles.smoke`.

A profile (:class:`asymlib.config.Profile`) holds every setting of the study. Get one with
:func:`asymlib.config.get_profile` (dotted overrides: ``get_profile("smoke", **{"sr.stage2.iterations": 8})``);
register another with :func:`asymlib.config.register_profile`.
"""
from __future__ import annotations

from ..config import Profile

PROFILES: dict[str, Profile] = {}

from . import paper, pilot, smoke  # noqa: E402

PROFILES[paper.PROFILE.name] = paper.PROFILE
PROFILES[pilot.PROFILE.name] = pilot.PROFILE
PROFILES[smoke.PROFILE.name] = smoke.PROFILE

__all__ = ["PROFILES"]
