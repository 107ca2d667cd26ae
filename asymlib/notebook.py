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
    """What a study notebook works with: the profile (with its overrides), its folders, and whether missing runs
    are trained in the notebook (``train_missing``: the smoke profile's default) or only listed as pending."""

    profile: Profile
    output_dir: Path
    figures_dir: Path
    train_missing: bool = True
    progress: bool = True

    def pending(self, notebook: str) -> "Any":
        """The runs of ``notebook`` (``"02"``) that are not finished, with the command that trains them."""
        from .pipeline import plan

        df = plan(self.profile, self.output_dir, only=[notebook])
        return df[~df["status"].isin(["finished", "collapsed", "unavailable"])]

    def show_pending(self, notebook: str) -> None:
        """Print the unfinished runs of ``notebook`` and how to train them (nothing when all are finished)."""
        df = self.pending(notebook)
        if df.empty:
            return
        print(f"{len(df)} run(s) of notebook {notebook} are not finished; their cells stay empty. Train them with\n"
              f"  python -m asymlib.runs train {' '.join(df['key'])} --profile {self.profile.name} "
              f"--output {self.output_dir} --with-deps")
        print(df[["key", "status", "step", "iterations"]].to_string(index=False, na_rep="-"))

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
                   overrides: dict[str, Any] | None = None, seed: int | None = None,
                   train_missing: bool | None = None, parameters: dict[str, Any] | None = None
                   ) -> NotebookContext:
    """The profile with its (dotted) ``overrides`` (``python -m asymlib.study --set/--config``), then the
    notebook's own shortcut ``parameters`` (``{"sr.stage2.iterations": iterations, ...}``) that are not None;
    a shortcut left at None never hides an override of the same setting. Folders default to the study's.

    ``train_missing=None`` trains missing runs inline in the smoke profile only; other profiles render what is
    finished and list the pending runs with the command that trains them (``python -m asymlib.runs train``).
    """
    from .study import REPO_ROOT

    ov = {k: v for k, v in (overrides or {}).items() if v is not None}
    ov.update({k: v for k, v in (parameters or {}).items() if v is not None})
    if seed is not None:
        ov["seed"] = seed
    prof = get_profile(profile, **ov)
    out = Path(output_dir) if output_dir else REPO_ROOT / "study_output" / prof.name
    figs = Path(figures_dir) if figures_dir else REPO_ROOT / "figures" / prof.name
    out.mkdir(parents=True, exist_ok=True)
    figs.mkdir(parents=True, exist_ok=True)
    import os

    return NotebookContext(prof, out, figs, prof.is_smoke if train_missing is None else bool(train_missing),
                           progress=os.environ.get("ASYMLIB_PROGRESS", "1") != "0")
