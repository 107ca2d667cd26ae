"""How a result was produced: profile, weights, seed, package versions, code version, machine."""
from __future__ import annotations

import datetime as _dt
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

__all__ = ["git_commit", "package_versions", "provenance"]

_PACKAGES = ("asymlib", "torch", "torchvision", "timm", "pyiqa", "spandrel", "numpy", "scipy", "pandas",
             "scikit-image")
_REPO = Path(__file__).resolve().parent.parent


def git_commit(repo: Path = _REPO) -> str:
    """``<sha>`` of the checkout asymlib runs from, with ``+dirty`` for uncommitted changes; ``unknown``
    outside a git checkout."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return sha + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions() -> dict[str, str]:
    out = {}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def provenance(profile: str, seed: int, weights: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    """Provenance record written beside every run's results."""
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.processor() or platform.machine()})"
    return {
        "profile": profile,
        "seed": seed,
        "weights": dict(weights or {}),
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "device": device,
        "torch_threads": torch.get_num_threads(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        **extra,
    }
