"""Paper tables, labelled comparisons ("paper vs ours") and figure saving.

The paper's Tables 1-4 ship with the package (``asymlib/resources/paper_tables``) in tidy form.
Every table and figure built here carries the profile and weights that produced our numbers, and smoke
numbers are never put in a column that could be read as the paper's.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pandas as pd

from .errors import UnknownNameError

__all__ = ["PAPER_TABLES", "load_paper_table", "ours_label", "profile_banner", "save_figure", "table4_comparison"]

PAPER_TABLES = {
    1: "table1_sr_nriqa_by_objective.csv",
    2: "table2_fr_iqa_by_initialization.csv",
    3: "table3_sr_nriqa_by_discriminator.csv",
    4: "table4_fr_iqa_by_backbone.csv",
}


def load_paper_table(number: int) -> pd.DataFrame:
    """The paper's Table ``number`` (1-4) as a tidy DataFrame."""
    if number not in PAPER_TABLES:
        raise UnknownNameError(f"the paper has Tables {sorted(PAPER_TABLES)}, not {number}")
    ref = resources.files("asymlib") / "resources" / "paper_tables" / PAPER_TABLES[number]
    with resources.as_file(ref) as path:
        return pd.read_csv(path)


def ours_label(profile: str) -> str:
    """Prefix of our columns: ``"ours (<profile>)"``. ``paper`` alone always means the published numbers, so a
    paper-profile run reads ``ours (paper)``, never ``paper``."""
    return f"ours ({profile})"


def profile_banner(profile: str, weights: str, extra: str = "") -> str:
    """One line saying how numbers were produced; smoke results say loudly that they are not the paper's."""
    from .rehearsal import is_rehearsal_data

    if profile == "smoke":
        text = (f"SMOKE PROFILE: {weights} backbone weights, embedded corpus, tiny schedules. "
                f"Numbers check the pipeline; they are NOT comparable to the paper.")
    elif is_rehearsal_data():
        text = (f"{profile} profile, rehearsal fixtures: miniature datasets and stand-in random weights, shrunk "
                f"schedules. Numbers check the pipeline; they mean nothing.")
    else:
        text = f"{profile} profile, {weights} backbone weights."
    return f"{text} {extra}".strip()


def save_figure(fig: Any, folder: str | Path, stem: str, formats: tuple[str, ...] = ("png", "pdf")) -> list[Path]:
    """Save a matplotlib figure under stable names ``folder/stem.<fmt>`` (atomically)."""
    from .atomic import atomic_path

    out = []
    for fmt in formats:
        path = Path(folder) / f"{stem}.{fmt}"
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=150)
        out.append(path)
    return out


def _rank(values: pd.Series) -> pd.Series:
    return values.rank(ascending=False, method="min").astype("Int64")


def table4_comparison(results: pd.DataFrame) -> pd.DataFrame:
    """Table 4 layout: one row per metric; the paper's average SRCC/PLCC and rank beside ours.

    ``results`` are the tidy rows of the metric-construction study (one per metric x benchmark, with an
    ``Average`` benchmark). Our columns are prefixed ``ours (<profile>)`` (:func:`ours_label`), so they never
    read as the paper's, whatever the profile.
    """
    paper = load_paper_table(4)
    paper_avg = paper[paper["benchmark"] == "Average"].set_index("backbone")
    mine = results[results["benchmark"] == "Average"].set_index("display")
    ours = ours_label(str(results["profile"].iloc[0]))
    benches = [b for b in results["benchmark"].unique() if b != "Average"]
    rows = []
    for display, r in mine.iterrows():
        row: dict[str, Any] = {"metric": display}
        if display in paper_avg.index:
            row["paper SRCC (avg)"] = paper_avg.loc[display, "srcc"]
            row["paper PLCC (avg)"] = paper_avg.loc[display, "plcc"]
            row["paper rank"] = int(paper_avg.loc[display, "rank"])
        for b in benches:
            rb = results[(results["display"] == display) & (results["benchmark"] == b)].iloc[0]
            row[f"{ours} SRCC [{b}]"] = rb["srcc"]
            row[f"{ours} SRCC 95% CI [{b}]"] = f"[{rb['srcc_low']:.3f}, {rb['srcc_high']:.3f}]"
            row[f"{ours} PLCC [{b}]"] = rb["plcc"]
        row[f"{ours} SRCC (avg)"] = r["srcc"]
        row[f"{ours} PLCC (avg)"] = r["plcc"]
        row["backbone weights"] = r["weights_source"]
        rows.append(row)
    table = pd.DataFrame(rows)
    table[f"{ours} rank"] = _rank(table[f"{ours} SRCC (avg)"])
    return table
