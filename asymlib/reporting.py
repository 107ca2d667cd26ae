"""Paper tables, labelled comparisons ("paper vs ours") and figure saving.

The paper's Tables 1-4 ship with the package (``asymlib/resources/paper_tables``) in tidy form.
Every table and figure built here carries the profile and weights that produced our numbers, and smoke
numbers are never put in a column that could be read as the paper's.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .errors import ConfigError, UnknownNameError

__all__ = ["AVERAGE", "HEAD_TITLES", "PAPER_TABLES", "TABLE_TITLES", "TableComparison", "average_label",
           "averaged_benchmarks", "averaged_evaluators", "compare_with_paper", "load_paper_table", "numbers_comparable",
           "ours_label", "paper_averaged_evaluators", "paper_comparison", "paper_correlation_data", "profile_banner",
           "save_figure", "styled_table"]

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


def styled_table(frame: pd.DataFrame, precision: int = 3, caption: str = "") -> Any:
    """``frame`` as a pandas Styler for display: floats at ``precision`` decimals, missing cells (NaN, None)
    shown as ``-``, the optional ``caption`` above."""
    styler = frame.style.format(precision=precision, na_rep="-")
    return styler.set_caption(caption) if caption else styler


# ----------------------------------------------------------------------------------------------
# Paper vs ours
# ----------------------------------------------------------------------------------------------
AVERAGE = "Average"
HEAD_TITLES = {"vanilla": "Vanilla", "patch": "Patch-level", "none": "w/o"}  # Table 3's discriminator names
TABLE_TITLES = {
    1: "NR-IQA of SR outputs per objective and perceptual metric",
    2: "FR-IQA by backbone initialization",
    3: "NR-IQA of SR outputs per discriminator",
    4: "FR-IQA of the DISTS-style metrics by backbone",
}


def numbers_comparable(profile: str, weights: str = "imagenet") -> bool:
    """Whether our numbers of ``profile`` may be set against the paper's (a ``delta``, one table read across).

    Never for the smoke profile (random weights, embedded corpus, tiny schedules), for backbone ``weights``
    other than the paper's ImageNet ones (e.g. a run with ``weights="random"``), nor for any profile run on
    rehearsal fixtures (:func:`asymlib.rehearsal.is_rehearsal_data`, i.e. ``$ASYMLIB_DATA`` holds them).
    ``weights`` is a profile's weights setting or a ``weights_source`` such as ``"imagenet(<repo>...)"``.
    """
    from .rehearsal import is_rehearsal_data

    return profile != "smoke" and str(weights).startswith("imagenet") and not is_rehearsal_data()


def paper_correlation_data() -> pd.DataFrame:
    """The paper's Fig. 3 points from its Tables 1 and 4.

    Returns columns ``setting, metric, iqa_srcc`` (Table 4 average SRCC over TID2013/Liu13/Ma17/TQD) and
    ``sr_quality`` (Table 1 average of the four normalized NR-IQA scores), one row per setting x metric.
    """
    t4 = load_paper_table(4)
    x = t4[t4["benchmark"] == "Average"].set_index("backbone")["srcc"]
    t1 = load_paper_table(1)
    t1 = t1[(t1["nr_iqa"] == "Average") & t1["column"].isin(x.index)]
    df = t1.rename(columns={"column": "metric", "score": "sr_quality"})[["setting", "metric", "sr_quality"]]
    df["iqa_srcc"] = df["metric"].map(x)
    return df[["setting", "metric", "iqa_srcc", "sr_quality"]].reset_index(drop=True)


def averaged_benchmarks(results: pd.DataFrame) -> str:
    """What the ``Average`` rows of FR results (notebooks 01 and 03) average, from their ``protocol``
    (``"mean over <benchmarks>"``), e.g. ``"synthetic levels, pooled"`` in smoke; tables without it say
    ``"the benchmarks"``."""
    avg = results[results["benchmark"] == AVERAGE]
    protocol = avg["protocol"].dropna().astype(str) if "protocol" in avg else pd.Series(dtype=str)
    return protocol.iloc[0].removeprefix("mean over ") if len(protocol) else "the benchmarks"


def averaged_evaluators(table: pd.DataFrame, column: str = "evaluator") -> list[str]:
    """The NR evaluators an ``Average`` row (Table 1) or column (Table 3) of ``table`` averages.

    Those named in ``table[column]``, other than ``Average``, whose kind is ``"nr"`` (from a ``kind`` column
    when ``table`` has one, else from the evaluator registry by display name), in order of appearance.
    """
    names = [e for e in dict.fromkeys(table[column].dropna()) if e != AVERAGE]
    if "kind" in table.columns:
        kinds = dict(zip(table[column], table["kind"]))
    else:
        from .sr.evaluators import get_evaluator_spec, list_evaluators

        kinds = {get_evaluator_spec(n).display: get_evaluator_spec(n).kind for n in list_evaluators()}
    return [e for e in names if kinds.get(e) == "nr"]


def paper_averaged_evaluators(number: int = 1) -> list[str]:
    """The evaluators the ``Average`` of the paper's Table 1 or 3 averages (MANIQA, LIQE, DeQA, VQ-R1)."""
    if number not in (1, 3):
        raise UnknownNameError(f"only Tables 1 and 3 have an NR-IQA Average, not Table {number}")
    return [e for e in dict.fromkeys(load_paper_table(number)["nr_iqa"]) if e != AVERAGE]


def average_label(paper: Sequence[str], ours: Sequence[str]) -> str:
    """``"Average (paper: MANIQA, LIQE, DeQA, VQ-R1; ours: PIQE)"``: the label of an Average row/column."""
    return f"{AVERAGE} (paper: {', '.join(paper) or 'none'}; ours: {', '.join(ours) or 'no NR evaluator'})"


def _as_tuple(key: Any) -> tuple:
    return key if isinstance(key, tuple) else (key,)


@dataclass
class TableComparison:
    """One of the paper's tables beside ours.

    ``long`` has one row per cell: the key columns, ``paper``, ``ours``, ``delta`` (ours - paper where both
    exist; present only when ``comparable``), ``paper_rank`` (1 = best, 2 = second among the paper's values of
    the cell's group) and ``ours_rank`` (the same among ours: the two sources are never ranked together), then
    the ``info`` columns (facts about our row, e.g. ``status``). ``index`` and ``columns`` are the keys
    :meth:`wide` puts on the rows and columns; ``labels`` renames key values for display only (``{key column:
    {value: label}}``, e.g. Table 1's ``Average`` row names the evaluators it averages); ``long`` keeps the keys.
    """

    number: int
    title: str
    long: pd.DataFrame
    index: list[str]
    columns: list[str]
    profile: str
    weights: str
    comparable: bool
    info: list[str] = field(default_factory=list)
    labels: dict[str, dict[Any, str]] = field(default_factory=dict)

    @property
    def banner(self) -> str:
        return profile_banner(self.profile, self.weights)

    def _sources(self) -> dict[str, str]:
        """Value column of ``long`` -> source label of the wide table."""
        src = {"paper": "paper", "ours": ours_label(self.profile)}
        if self.comparable:
            src["delta"] = "delta"
        return src

    def _order(self, keys: list[str]) -> pd.Index:
        """Distinct key combinations in order of appearance (the paper's order first)."""
        combos = self.long[keys].drop_duplicates()
        return pd.MultiIndex.from_frame(combos) if len(keys) > 1 else pd.Index(combos[keys[0]], name=keys[0])

    def _grid(self, value: str) -> pd.DataFrame:
        grid = self.long.pivot_table(index=self.index, columns=self.columns, values=value, aggfunc="first",
                                     dropna=False)
        return grid.reindex(index=self._order(self.index), columns=self._order(self.columns))

    def _info(self, name: str) -> pd.Series:
        """The first non-missing ``name`` of each row of the wide table."""
        rows = self.long.dropna(subset=[name]).drop_duplicates(self.index).set_index(self.index)[name]
        return rows.reindex(self._order(self.index))

    def _frame(self, ranks: bool = False) -> pd.DataFrame:
        """:meth:`wide`, or (``ranks``) the same cells holding ``paper_rank`` / ``ours_rank`` (NaN elsewhere)."""
        src = self._sources()
        values = {v: self._grid(v) for v in src}
        shown = ({v: self._grid(f"{v}_rank") if v != "delta" else values[v] * np.nan for v in src} if ranks
                 else values)
        ours = src["ours"]
        pad = ("",) * (len(self.columns) - 1)
        data: dict[tuple, pd.Series] = {}
        if self.comparable:
            for col in self._order(self.columns):
                for v, label in src.items():
                    data[(*_as_tuple(col), label)] = shown[v][col]
            info_key, names = (lambda n: (n, *pad, ours)), [*self.columns, "source"]
        else:
            # one block per source, each with only the columns that source has values in
            for v, label in src.items():
                for col in self._order(self.columns):
                    if values[v][col].notna().any():
                        data[(label, *_as_tuple(col))] = shown[v][col]
            info_key, names = (lambda n: (ours, n, *pad)), ["source", *self.columns]
        for name in self.info:
            info = self._info(name)
            if info.notna().any():
                data[info_key(name)] = pd.Series(np.nan, index=info.index) if ranks else info
        frame = pd.DataFrame(data, index=self._order(self.index))
        frame.columns = pd.MultiIndex.from_tuples(list(data), names=names)
        for key, mapping in self.labels.items():
            if key in frame.index.names:
                frame = frame.rename(index=mapping, level=key)
            if key in frame.columns.names:
                frame = frame.rename(columns=mapping, level=key)
        return frame

    def wide(self) -> pd.DataFrame:
        """Rows ``index`` (relabelled); columns with a ``source`` level: ``paper``, ``ours (<profile>)``.

        Comparable numbers: columns ``(column keys..., source)``, each cell's ``paper``, ours and ``delta`` side
        by side. Otherwise columns ``(source, column keys...)``: the paper's block, then ours, each holding only
        the columns it has numbers in, and no delta. The ``info`` columns close our block.
        """
        return self._frame()

    def styled(self, precision: int = 3) -> Any:
        """:meth:`wide` as a pandas Styler: missing cells ``-``; best **bold** and second underlined within the
        paper's values and within ours separately; the caption is the profile banner."""
        wide = self.wide()
        ranks = self._frame(ranks=True).to_numpy(dtype=float)
        css = pd.DataFrame(np.where(ranks == 1, "font-weight: bold",
                                    np.where(ranks == 2, "text-decoration: underline", "")),
                           index=wide.index, columns=wide.columns)
        if self.comparable:
            how = ("Best bold, second underlined: among the paper's values and among ours, separately; "
                   "delta = ours - paper.")
        else:
            how = ("Our numbers are not comparable with the paper's: no delta, ours in a block of their own; best "
                   "bold, second underlined within each block.")
        return (wide.style.format(precision=precision, na_rep="-").apply(lambda _: css, axis=None)
                .set_caption(f"Table {self.number}: {self.title}. {self.banner} {how}"))


def compare_with_paper(number: int, title: str, paper: pd.DataFrame, ours: pd.DataFrame, keys: Sequence[str],
                       item: str | Sequence[str], index: Sequence[str], columns: Sequence[str], profile: str,
                       weights: str, unranked: Sequence[str] = (), higher_is_better: bool = True,
                       info: Sequence[str] = (), labels: Mapping[str, Mapping[Any, str]] | None = None,
                       comparable: bool | None = None) -> TableComparison:
    """Align the paper's and our values of one table on ``keys`` (outer join; both frames have ``value``).

    Ranks are computed over ``item`` (one key, or several ranked together, e.g. Table 3's head x backbone)
    within each group of the other keys, for the paper's values and ours separately, leaving out rows whose
    item is in ``unranked`` (e.g. Table 1's ``Std.``, ``L1`` and ``Ref.`` columns). ``info`` names columns of
    ``ours`` carried into the comparison (one value per row of ``index``). ``comparable`` (default
    :func:`numbers_comparable`) decides whether a ``delta`` column exists.
    """
    keys, info = list(keys), list(info)
    comparable = numbers_comparable(profile, weights) if comparable is None else comparable
    for name, df, need in (("paper", paper, [*keys, "value"]), ("ours", ours, [*keys, "value", *info])):
        missing = [k for k in need if k not in df.columns]
        if missing:
            raise ConfigError(f"{name} rows of Table {number} lack column(s) {missing}")
    merged = pd.merge(paper[[*keys, "value"]].rename(columns={"value": "paper"}),
                      ours[[*keys, "value", *info]].rename(columns={"value": "ours"}), on=keys, how="outer")
    # an outer merge sorts its keys; tables read in the paper's order, then our extra rows
    order = pd.concat([paper[keys], ours[keys]]).drop_duplicates().reset_index(drop=True)
    merged = (order.assign(_pos=np.arange(len(order))).merge(merged, on=keys, how="right")
              .sort_values("_pos", kind="stable").drop(columns="_pos").reset_index(drop=True))
    merged["delta"] = merged["ours"] - merged["paper"]
    items = [item] if isinstance(item, str) else list(item)
    group = [k for k in keys if k not in items]
    ranked = merged[~merged[items].isin(list(unranked)).any(axis=1)]
    for value in ("paper", "ours"):
        by = ranked.groupby(group, dropna=False, sort=False)[value] if group else ranked[value]
        merged[f"{value}_rank"] = by.rank(ascending=not higher_is_better, method="min").reindex(merged.index)
    delta = ["delta"] if comparable else []
    merged = merged[[*keys, "paper", "ours", *delta, "paper_rank", "ours_rank", *info]]
    return TableComparison(number, title, merged, list(index), list(columns), profile, weights, comparable, info,
                           {k: dict(v) for k, v in (labels or {}).items()})


def _melt_statistics(df: pd.DataFrame, ids: list[str]) -> pd.DataFrame:
    """SRCC and PLCC of each row as two rows (``statistic``, ``value``), the row's SRCC before its PLCC."""
    out = df.assign(_pos=np.arange(len(df))).melt(id_vars=[*ids, "_pos"], value_vars=["srcc", "plcc"],
                                                  var_name="statistic", value_name="value")
    out["statistic"] = out["statistic"].str.upper()
    return out.sort_values("_pos", kind="stable").drop(columns="_pos").reset_index(drop=True)


def _with_columns(df: pd.DataFrame, columns: Mapping[str, str]) -> pd.DataFrame:
    """``df``'s columns renamed by ``{new name: column of df}``, those ``df`` lacks left out."""
    return pd.DataFrame({new: df[old] for new, old in columns.items() if old in df.columns})


def _table1_inputs(ours: pd.DataFrame) -> dict[str, Any]:
    from .sr.config import SR_SETTINGS

    paper = load_paper_table(1).rename(columns={"nr_iqa": "evaluator", "score": "value"})
    mine = ours[ours["setting"].notna()].rename(columns={"score": "value"})
    mine = mine.assign(setting=[SR_SETTINGS[s].paper_label if s in SR_SETTINGS else s for s in mine["setting"]])
    label = average_label(paper_averaged_evaluators(1), averaged_evaluators(ours))
    return dict(paper=paper, ours=mine, keys=["setting", "evaluator", "column"], item="column",
                index=["setting", "evaluator"], columns=["column"], unranked=("Std.", "L1", "Ref."),
                labels={"setting": {s.paper_label: s.title for s in SR_SETTINGS.values()},
                        "evaluator": {AVERAGE: label}})


def _benchmark_average_label(number: int, ours: pd.DataFrame) -> dict[str, dict[Any, str]]:
    """Tables 2 and 4: the ``Average`` column names the benchmarks each side averages."""
    paper = [b for b in dict.fromkeys(load_paper_table(number)["benchmark"]) if b != AVERAGE]
    mine = averaged_benchmarks(ours) if "benchmark" in ours else "the benchmarks"
    return {"benchmark": {AVERAGE: f"{AVERAGE} (paper: {', '.join(paper)}; ours: {mine})"}}


def _table2_inputs(ours: pd.DataFrame) -> dict[str, Any]:
    ids = ["backbone", "initialization", "benchmark"]
    paper = _melt_statistics(load_paper_table(2), ids)
    mine = _with_columns(ours, {"backbone": "paper_backbone", "initialization": "init_display",
                                "benchmark": "benchmark", "srcc": "srcc", "plcc": "plcc", "variant": "display",
                                "status": "status", "weights": "weights_source"})
    info = [c for c in ("variant", "status", "weights") if c in mine.columns]
    return dict(paper=paper, ours=_melt_statistics(mine, [*ids, *info]), keys=[*ids, "statistic"],
                item="initialization", index=["backbone", "initialization"], columns=["benchmark", "statistic"],
                info=info, labels=_benchmark_average_label(2, ours))


def _table3_inputs(ours: pd.DataFrame) -> dict[str, Any]:
    paper = load_paper_table(3).rename(columns={"nr_iqa": "evaluator", "score": "value"})
    mine = ours.rename(columns={"score": "value"})
    mine = mine.assign(backbone=np.where(mine["head"].eq("none"), "w/o (base)", mine["backbone"]))
    label = average_label(paper_averaged_evaluators(3), averaged_evaluators(ours))
    return dict(paper=paper, ours=mine, keys=["head", "backbone", "evaluator"], item=["head", "backbone"],
                index=["head", "backbone"], columns=["evaluator"],
                info=[c for c in ("variant", "status") if c in mine.columns],
                labels={"head": HEAD_TITLES, "evaluator": {AVERAGE: label}})


def _table4_inputs(ours: pd.DataFrame) -> dict[str, Any]:
    paper = _melt_statistics(load_paper_table(4), ["backbone", "benchmark"])
    mine = _with_columns(ours, {"backbone": "display", "benchmark": "benchmark", "srcc": "srcc", "plcc": "plcc",
                                "weights": "weights_source"})
    info = ["weights"] if "weights" in mine.columns else []
    return dict(paper=paper, ours=_melt_statistics(mine, ["backbone", "benchmark", *info]),
                keys=["backbone", "benchmark", "statistic"], item="backbone", index=["backbone"],
                columns=["benchmark", "statistic"], info=info, labels=_benchmark_average_label(4, ours))


_TABLE_INPUTS = {1: _table1_inputs, 2: _table2_inputs, 3: _table3_inputs, 4: _table4_inputs}


def paper_comparison(number: int, ours: pd.DataFrame, profile: str, weights: str,
                     comparable: bool | None = None) -> TableComparison:
    """The paper's Table ``number`` (1-4) beside ours, from the tidy frame the notebook that makes it has.

    ``ours`` per table:

    1. notebook 02's Table 1 (``SRStudyResult.table``): ``setting`` (key), ``evaluator`` (display or
       ``Average``), ``column``, ``score``. The ``Average`` row is labelled with the evaluators it averages.
    2. notebook 03's FR rows (``run_fr_initialization``): ``paper_backbone``, ``init_display``, ``benchmark``,
       ``srcc``, ``plcc`` and, shown beside ours, ``display`` (our backbone), ``status``, ``weights_source``.
    3. notebook 04's Table 3 (``DiscriminatorStudyResult.table``): ``head``, ``backbone``, ``evaluator``,
       ``score`` and, shown beside ours, ``variant``, ``status``.
    4. notebook 01's results (``run_metric_study``): ``display``, ``benchmark``, ``srcc``, ``plcc`` and
       ``weights_source``.

    ``comparable`` defaults to :func:`numbers_comparable` of ``profile``.
    """
    if number not in _TABLE_INPUTS:
        raise UnknownNameError(f"the paper has Tables {sorted(_TABLE_INPUTS)}, not {number}")
    return compare_with_paper(number, TABLE_TITLES[number], profile=profile, weights=weights, comparable=comparable,
                              **_TABLE_INPUTS[number](ours))
