"""Helpers for the study notebooks: resolve parameters into a profile and output folders, show banners."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Profile, get_profile
from .reporting import profile_banner

__all__ = ["NotebookContext", "setup_notebook"]


@dataclass
class NotebookContext:
    profile: Profile
    output_dir: Path
    figures_dir: Path

    @property
    def runs_dir(self) -> Path:
        return self.output_dir / "runs"

    @property
    def tables_dir(self) -> Path:
        return self.output_dir / "tables"

    @property
    def banner(self) -> str:
        return profile_banner(self.profile.name, self.profile.weights)

    def show_banner(self) -> None:
        from IPython.display import HTML, display

        color = "#b00020" if self.profile.is_smoke else "#1b5e20"
        display(HTML(f'<div style="border:2px solid {color};padding:6px;color:{color};font-weight:bold">'
                     f"{self.banner}</div>"))


def setup_notebook(profile: str = "smoke", output_dir: str | None = None, figures_dir: str | None = None,
                   overrides: dict[str, Any] | None = None, seed: int | None = None) -> NotebookContext:
    """Profile with (dotted) overrides whose value is not None; folders default to the study's defaults."""
    from .study import REPO_ROOT

    ov = {k: v for k, v in (overrides or {}).items() if v is not None}
    if seed is not None:
        ov["seed"] = seed
    prof = get_profile(profile, **ov)
    out = Path(output_dir) if output_dir else REPO_ROOT / "study_output" / prof.name
    figs = Path(figures_dir) if figures_dir else REPO_ROOT / "figures" / prof.name
    out.mkdir(parents=True, exist_ok=True)
    figs.mkdir(parents=True, exist_ok=True)
    return NotebookContext(prof, out, figs)
